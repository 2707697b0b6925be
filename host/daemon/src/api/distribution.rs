//! `GET /distribution/{name}/json`: what the registry holds for a reference,
//! without pulling it, as dockerd answers:
//!
//! ```text
//! {"Descriptor":{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:…","size":506},
//!  "Platforms":[{"architecture":"amd64","os":"linux"},{"architecture":"arm64","os":"linux","variant":"v8"}]}
//! ```
//!
//! The descriptor is the manifest's (or index's) the registry serves for the
//! reference; the platforms are the index entries', or for a single manifest
//! the one its config names (dockerd 20.10 leaves them out for OCI
//! manifests; later versions read the config as we do). Credentials as for
//! pulls ([`super::images::registry_auth`]).
//!
//! Errors, as dockerd: a malformed name is 400, an unknown repository or tag
//! 404 (`manifest for NAME not found: manifest unknown: …`), refused
//! credentials 401, an unreachable registry 500.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json as j;
use vmrun_images::registry::{resolve_descriptor, RemoteDescriptor};
use vmrun_images::{ImageError, PullOptions};

use super::images::registry_auth;
use super::{json, AppState};
use crate::error::{ApiError, ApiResult};

/// The route: the name may hold slashes, so everything after `/distribution/`
/// is taken and must end in `/json`.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/distribution/{*rest}", axum::routing::get(inspect))
}

async fn inspect(
    State(engine): State<AppState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let name = rest
        .strip_suffix("/json")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::not_found(format!("page not found: /distribution/{rest}")))?
        .to_owned();
    let (auth_config_path, credentials) = registry_auth(&headers);
    let opts = PullOptions {
        platform: None,
        auth_config_path,
        credentials,
        hosts: engine.config.registry_hosts.clone(),
    };
    let shown = name.clone();
    let descriptor = tokio::task::spawn_blocking(move || resolve_descriptor(&name, &opts))
        .await
        .map_err(|e| ApiError::internal(format!("distribution inspect task failed: {e}")))?
        .map_err(|e| api_error(&shown, e))?;
    Ok(json(&body(&descriptor)))
}

/// dockerd's JSON for a descriptor.
fn body(d: &RemoteDescriptor) -> serde_json::Value {
    let platforms: Vec<serde_json::Value> = d
        .platforms
        .iter()
        .map(|p| {
            let mut v = j!({ "architecture": p.architecture, "os": p.os });
            if let Some(version) = p.os_version.as_deref().filter(|s| !s.is_empty()) {
                v["os.version"] = j!(version);
            }
            if !p.os_features.is_empty() {
                v["os.features"] = j!(p.os_features);
            }
            if let Some(variant) = p.variant.as_deref().filter(|s| !s.is_empty()) {
                v["variant"] = j!(variant);
            }
            v
        })
        .collect();
    j!({
        "Descriptor": { "mediaType": d.media_type, "digest": d.digest, "size": d.size },
        // dockerd's nil slice: null when the registry names no platform.
        "Platforms": if platforms.is_empty() { serde_json::Value::Null } else { platforms.into() },
    })
}

/// The status dockerd would answer for `e`, with a message naming `name`.
fn api_error(name: &str, e: ImageError) -> ApiError {
    match e {
        // The store's NotFound reads "No such image: …", which suits local
        // images; here the registry lacks it, so its own words are kept.
        ImageError::NotFound(message) => ApiError::not_found(message),
        ImageError::InvalidReference { .. } => ApiError::bad_request(e.to_string()),
        ImageError::Unauthorized { .. } => ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()),
        other => ApiError::internal(format!("{name}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmrun_images::registry::RemotePlatform;

    #[test]
    fn body_has_dockerd_field_names() {
        let d = RemoteDescriptor {
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            digest: "sha256:abc".into(),
            size: 506,
            platforms: vec![
                RemotePlatform {
                    architecture: "amd64".into(),
                    os: "linux".into(),
                    ..Default::default()
                },
                RemotePlatform {
                    architecture: "arm64".into(),
                    os: "linux".into(),
                    variant: Some("v8".into()),
                    os_features: vec!["f".into()],
                    os_version: Some("10.0".into()),
                },
            ],
        };
        let expected: serde_json::Value = serde_json::from_str(
            r#"{"Descriptor":{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:abc","size":506},
                "Platforms":[{"architecture":"amd64","os":"linux"},
                             {"architecture":"arm64","os":"linux","os.version":"10.0","os.features":["f"],"variant":"v8"}]}"#,
        )
        .unwrap();
        assert_eq!(body(&d), expected);
    }

    #[test]
    fn no_platforms_is_null() {
        let d = RemoteDescriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: "sha256:abc".into(),
            size: 1,
            platforms: Vec::new(),
        };
        assert_eq!(body(&d)["Platforms"], serde_json::Value::Null);
    }

    #[test]
    fn errors_map_to_dockerd_statuses() {
        let missing = api_error(
            "r/x",
            ImageError::NotFound("manifest for r/x:latest not found: manifest unknown".into()),
        );
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(
            missing.message,
            "manifest for r/x:latest not found: manifest unknown"
        );
        let down = api_error(
            "r/x",
            ImageError::Registry {
                registry: "r".into(),
                message: "connection refused".into(),
            },
        );
        assert_eq!(down.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(down.message.contains("r/x"), "{}", down.message);
    }
}
