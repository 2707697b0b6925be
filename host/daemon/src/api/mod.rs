//! The Docker Engine API over a Unix socket.
//!
//! Every path may carry a `/vX.Y` prefix; it is stripped before routing (we serve one
//! behaviour for every version from [`MIN_API_VERSION`] to [`API_VERSION`]). Errors are
//! docker-shaped JSON (`{"message": ...}`) with docker's status codes.

mod archive;
mod build;
mod commit;
mod containers;
mod control;
mod convert;
mod distribution;
mod drain;
mod exec;
mod hijack;
mod image_history;
mod images;
mod import;
mod networks;
mod prune;
mod pull;
mod push;
pub(crate) mod query;
mod search;
mod streams;
mod system;
mod usage;
mod vm;
mod volumes;

use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::header::HeaderValue;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::engine::Engine;
use crate::error::ApiError;

/// The API version we implement.
pub const API_VERSION: &str = "1.45";
/// The oldest version clients may ask for.
pub const MIN_API_VERSION: &str = "1.24";

/// Shared state of every handler.
pub type AppState = Arc<Engine>;

/// Bind the API socket (mode 0660, group `vmrun` when it exists), replacing a stale one.
pub fn listen(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another daemon is already serving {}: stop it first",
                path.display()
            );
        }
        std::fs::remove_file(path)?;
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name("vmrun") {
        let _ = nix::unistd::chown(path, None, Some(group.gid));
    }
    Ok(listener)
}

/// The API version a request's path asked for (`/v1.41/...`); absent without a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedVersion {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl RequestedVersion {
    /// Whether it is older than `major.minor`.
    pub fn older_than(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) < (major, minor)
    }

    fn parse(v: &str) -> Option<Self> {
        let (major, minor) = v.split_once('.')?;
        Some(RequestedVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

/// Remove a leading `/vX.Y` from the path (kept as a [`RequestedVersion`] extension).
fn strip_version(mut req: Request) -> Request {
    let uri = req.uri();
    let path = uri.path();
    let rest = path.strip_prefix("/v").and_then(|r| {
        let end = r.find('/')?;
        let (ver, tail) = r.split_at(end);
        ver.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            .then_some(tail)
    });
    if let Some(tail) = rest {
        let pq = match uri.query() {
            Some(q) => format!("{tail}?{q}"),
            None => tail.to_string(),
        };
        let version = req.uri().path()[2..]
            .split('/')
            .next()
            .and_then(RequestedVersion::parse);
        if let Ok(new) = pq.parse() {
            *req.uri_mut() = new;
        }
        if let Some(v) = version {
            req.extensions_mut().insert(v);
        }
    }
    req
}

/// The API's router, wrapped so the version prefix is gone before routing.
pub fn router(engine: AppState) -> axum::routing::IntoMakeService<axum::Router> {
    let routes = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/system/df", get(usage::disk_usage))
        .route("/auth", post(system::auth))
        .route("/commit", post(commit::commit))
        .route("/build", post(build::build))
        .merge(containers::routes())
        .merge(archive::routes())
        .merge(control::routes())
        .merge(search::routes())
        .merge(exec::routes())
        .merge(prune::routes())
        .merge(networks::routes())
        .merge(volumes::routes())
        .merge(distribution::routes())
        .merge(vm::routes())
        .route("/images/json", get(images::list))
        .route("/images/load", post(images::load))
        .fallback(push::dispatch) // POST /images/{name}/push, else images::dispatch
        .layer(axum::middleware::map_response(add_server_headers))
        .layer(axum::middleware::from_fn(drain::drain_unread))
        .with_state(engine);
    let app = Router::new().fallback_service(
        tower::ServiceBuilder::new()
            .map_request(strip_version)
            .service(routes),
    );
    app.into_make_service()
}

async fn add_server_headers(res: axum::response::Response) -> axum::response::Response {
    let mut res = with_error_body(res);
    let status = res.status();
    let h = res.headers_mut();
    // Answers without a body (204, 304) still name a media type the spec documents.
    if matches!(status.as_u16(), 204 | 304) && !h.contains_key(axum::http::header::CONTENT_TYPE) {
        h.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("vmrun/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    res
}

/// A 405 from routing (no body, no `Content-Type`) as a docker-shaped JSON error; its
/// `Allow` header stays.
fn with_error_body(res: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    if res.status() != StatusCode::METHOD_NOT_ALLOWED
        || res.headers().contains_key(header::CONTENT_TYPE)
    {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    let body = serde_json::json!({ "message": "method not allowed" }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}

/// Decode a JSON body with a docker-shaped 400 on failure. An empty body decodes as `{}`.
pub fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let data: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(data).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// JSON response.
pub fn json<T: serde::Serialize>(value: &T) -> axum::response::Response {
    use axum::response::IntoResponse;
    axum::Json(value).into_response()
}

/// Docker's `filters` query: `{"status":["running"],"name":["web"]}` (or the older
/// `{"status":{"running":true}}` form).
pub(crate) fn parse_filters(
    raw: Option<&str>,
) -> crate::error::ApiResult<std::collections::HashMap<String, Vec<String>>> {
    let Some(raw) = raw.filter(|f| !f.is_empty()) else {
        return Ok(std::collections::HashMap::new());
    };
    let v: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let mut out = std::collections::HashMap::new();
    if let Some(obj) = v.as_object() {
        for (k, val) in obj {
            let vals: Vec<String> = match val {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                serde_json::Value::Object(o) => o.keys().cloned().collect(),
                _ => return Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
            };
            out.insert(k.clone(), vals);
        }
    }
    Ok(out)
}

/// Decodes `%XX` escapes in a path segment (clients may escape the name); a `%` not
/// followed by two hex digits stays as it is.
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_version_prefix() {
        let req = Request::builder()
            .uri("/v1.45/containers/json?all=1")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(
            strip_version(req).uri().to_string(),
            "/containers/json?all=1"
        );
        let req = Request::builder()
            .uri("/volumes/v1.x")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(strip_version(req).uri().to_string(), "/volumes/v1.x");
    }

    #[test]
    fn bad_json_is_400() {
        let e = json_body::<serde_json::Value>(&Bytes::from_static(b"{nope")).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
    }
}
