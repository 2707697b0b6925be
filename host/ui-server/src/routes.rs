//! The HTTP side: static files, the token and host checks, the plain relay under
//! `/api/docker`, the "start daemon" action and the WebSocket upgrade.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use bytes::Bytes;

use crate::auth::{host_allowed, origin_allowed, token_matches, TOKEN_HEADER};
use crate::daemon::FORWARDED_HEADERS;
use crate::{assets, Shared};

/// The largest request body relayed (image loads and builds are not the dashboard's).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The `reason` of a 502 that means the daemon is not running (the front end shows
/// its "start daemon" action on it).
pub const DAEMON_DOWN: &str = "daemon-down";

type AppState = Arc<Shared>;

pub(crate) fn router(shared: AppState) -> Router {
    Router::new()
        .route("/api/docker/{*path}", any(relay))
        .route("/ui/daemon/start", post(start_daemon))
        .route("/ws", get(websocket))
        .fallback(get(static_file))
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

fn json_error(status: StatusCode, message: &str, reason: Option<&str>) -> Response {
    let body = match reason {
        Some(r) => serde_json::json!({ "message": message, "reason": r }),
        None => serde_json::json!({ "message": message }),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Host check on everything; the token on everything but the static files.
async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    if !host_allowed(host, s.port) {
        return json_error(StatusCode::FORBIDDEN, "wrong host", None);
    }
    let path = req.uri().path();
    let needs_token = path.starts_with("/api/") || path.starts_with("/ui/") || path == "/ws";
    if needs_token {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let given = if path == "/ws" {
            query_param(req.uri().query().unwrap_or(""), "token")
        } else {
            req.headers()
                .get(TOKEN_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let ok =
            origin_allowed(origin, s.port) && given.is_some_and(|t| token_matches(&s.token, &t));
        if !ok {
            return json_error(StatusCode::UNAUTHORIZED, "missing or wrong UI token", None);
        }
    }
    next.run(req).await
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

async fn static_file(State(s): State<AppState>, req: Request) -> Response {
    let Some(path) = assets::resolve(&s.assets, req.uri().path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(data) => {
            let cache = if req.uri().path().starts_with("/assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            (
                [
                    (header::CONTENT_TYPE, assets::content_type(&path)),
                    (header::CACHE_CONTROL, cache),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                data,
            )
                .into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn relay(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let uri = req.uri().clone();
    let rest = uri.path().strip_prefix("/api/docker").unwrap_or("/");
    let path = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let forwarded: Vec<(String, String)> = FORWARDED_HEADERS
        .iter()
        .filter_map(|name| {
            let v = headers.get(*name)?.to_str().ok()?;
            Some((name.to_string(), v.to_string()))
        })
        .collect();
    let body: Bytes = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return json_error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string(), None),
    };
    match s
        .client
        .request(method.as_str(), &path, &forwarded, body)
        .await
    {
        Ok(response) => {
            let (parts, incoming) = response.into_parts();
            let mut out = Response::new(Body::new(incoming));
            *out.status_mut() = parts.status;
            if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
                out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            out
        }
        Err(e) if e.is_down() => {
            json_error(StatusCode::BAD_GATEWAY, &e.to_string(), Some(DAEMON_DOWN))
        }
        Err(e @ crate::DaemonError::Request(_)) => {
            json_error(StatusCode::BAD_REQUEST, &e.to_string(), None)
        }
        Err(e) => json_error(StatusCode::BAD_GATEWAY, &e.to_string(), None),
    }
}

async fn start_daemon(State(s): State<AppState>) -> Response {
    let Some(start) = s.start_daemon.clone() else {
        return json_error(
            StatusCode::NOT_IMPLEMENTED,
            "this UI server cannot start a daemon",
            None,
        );
    };
    match start().await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response(),
        Err(message) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &message, None),
    }
}

async fn websocket(State(s): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let client = s.client.clone();
    ws.on_upgrade(move |socket| crate::ws::session(socket, client))
}
