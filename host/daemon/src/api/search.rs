//! `GET /images/search?term=&limit=&filters=`: `docker search` against a registry's
//! catalog (`GET /v2/_catalog`). The term names the registry as an image name does
//! (`localhost:5000/busy`); repositories whose name holds the rest of the term match.
//! Docker Hub has no catalog and its v1 search service is not used: a term without a
//! registry, or a registry without a catalog, gets an error saying so.

use std::collections::HashMap;

use axum::extract::State;

use super::query::DockerQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use vmrun_images::registry::PullOptions;
use vmrun_images::ImageError;

use super::images::registry_auth;
use super::{json, parse_filters, AppState};
use crate::error::{ApiError, ApiResult};

/// dockerd's default and largest `limit`.
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 100;

/// The route.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/images/search", axum::routing::get(search))
}

/// `term` as (registry, query), split as image names are.
pub fn split_term(term: &str) -> (Option<&str>, &str) {
    vmrun_images::split_registry(term)
}

/// The `filters` of a search: `stars` (at least), `is-official`, `is-automated`.
fn keep(filters: &HashMap<String, Vec<String>>) -> ApiResult<bool> {
    let mut keep = true;
    for (key, values) in filters {
        for v in values {
            match key.as_str() {
                "stars" => {
                    let n: i64 = v.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid filter 'stars={v}'"))
                    })?;
                    keep &= n <= 0;
                }
                "is-official" | "is-automated" => match v.as_str() {
                    "true" | "1" => keep = false,
                    "false" | "0" => {}
                    _ => return Err(ApiError::bad_request(format!("invalid filter '{key}={v}'"))),
                },
                other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
            }
        }
    }
    Ok(keep)
}

/// `GET /images/search`'s parameters.
#[derive(serde::Deserialize)]
struct SearchQuery {
    term: Option<String>,
    limit: Option<String>,
    filters: Option<String>,
}

async fn search(
    State(engine): State<AppState>,
    DockerQuery(q): DockerQuery<SearchQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let term = q.term.as_deref().unwrap_or_default().trim();
    if term.is_empty() {
        return Err(ApiError::bad_request("bad parameter: term cannot be empty"));
    }
    let limit = match q.limit.as_ref().filter(|l| !l.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Limit {l} is outside the range of [1, {MAX_LIMIT}]"
                ))
            })?,
    };
    let filters = parse_filters(q.filters.as_deref())?;
    let wanted = keep(&filters)?;
    let (Some(registry), query) = split_term(term) else {
        return Err(ApiError::bad_request(format!(
            "searching Docker Hub is not supported: vmrund searches a registry's catalog; name the registry in the term (docker search REGISTRY/{term})"
        )));
    };
    let (auth_config_path, credentials) = registry_auth(&headers);
    let opts = PullOptions {
        platform: None,
        auth_config_path,
        credentials,
        hosts: engine.config.registry_hosts.clone(),
    };
    let host = registry.to_owned();
    let listed = tokio::task::spawn_blocking(move || vmrun_images::registry::catalog(&host, &opts))
        .await
        .map_err(|e| ApiError::internal(format!("search task failed: {e}")))?
        .map_err(|e| match e {
            ImageError::NotFound(m) => ApiError::bad_request(m),
            ImageError::Unauthorized { .. } => {
                ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())
            }
            ImageError::InvalidReference { .. } => ApiError::bad_request(e.to_string()),
            // An unreachable or failing registry is the daemon's to report (as dockerd).
            other => ApiError::internal(other.to_string()),
        })?;
    let needle = query.to_ascii_lowercase();
    let results: Vec<serde_json::Value> = listed
        .iter()
        .filter(|_| wanted)
        .filter(|repo| repo.to_ascii_lowercase().contains(&needle))
        .take(limit)
        .map(|repo| {
            serde_json::json!({
                "name": format!("{registry}/{repo}"),
                "description": "",
                "star_count": 0,
                "is_official": false,
                "is_automated": false,
            })
        })
        .collect();
    Ok(json(&results))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_registry() {
        assert_eq!(
            split_term("localhost:5000/busy"),
            (Some("localhost:5000"), "busy")
        );
        assert_eq!(split_term("reg.example/a/b"), (Some("reg.example"), "a/b"));
        assert_eq!(split_term("localhost/x"), (Some("localhost"), "x"));
        assert_eq!(split_term("busybox"), (None, "busybox"));
        assert_eq!(split_term("library/busybox"), (None, "library/busybox"));
    }

    #[test]
    fn filters_like_dockerd() {
        let f = |k: &str, v: &str| HashMap::from([(k.to_owned(), vec![v.to_owned()])]);
        assert!(keep(&f("stars", "0")).unwrap());
        assert!(!keep(&f("stars", "3")).unwrap());
        assert!(!keep(&f("is-official", "true")).unwrap());
        assert!(keep(&f("is-automated", "false")).unwrap());
        assert!(keep(&f("nope", "1")).is_err());
        assert!(keep(&f("stars", "x")).is_err());
    }
}
