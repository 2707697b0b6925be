//! `POST /containers/{id}/pause`, `/unpause` and `/update`: changing a running
//! container in place.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use super::{json, json_body, AppState};
use crate::engine::UpdateRequest;
use crate::error::ApiResult;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/update", post(update))
}

async fn pause(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    engine.pause_container(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn unpause(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    engine.unpause_container(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Docker's `RestartPolicy`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RestartPolicy {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    maximum_retry_count: Option<i64>,
}

/// The body of `POST /containers/{id}/update` (docker's `UpdateConfig`); zeros mean
/// unchanged, as in dockerd, and unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateBody {
    memory: Option<i64>,
    memory_swap: Option<i64>,
    nano_cpus: Option<i64>,
    cpu_shares: Option<i64>,
    cpu_quota: Option<i64>,
    cpu_period: Option<i64>,
    cpuset_cpus: Option<String>,
    cpuset_mems: Option<String>,
    pids_limit: Option<i64>,
    restart_policy: Option<RestartPolicy>,
}

impl UpdateBody {
    fn request(self) -> UpdateRequest {
        let set = |v: Option<i64>| v.filter(|n| *n != 0);
        let restart_policy = self.restart_policy.and_then(|p| {
            let name = p.name.unwrap_or_default();
            let retries = p.maximum_retry_count.unwrap_or(0);
            (!name.is_empty() || retries != 0).then_some((name, retries))
        });
        UpdateRequest {
            memory: set(self.memory),
            memory_swap: set(self.memory_swap),
            nano_cpus: set(self.nano_cpus),
            cpu_shares: set(self.cpu_shares),
            cpu_quota: set(self.cpu_quota),
            cpu_period: set(self.cpu_period),
            cpuset_cpus: self.cpuset_cpus.filter(|s| !s.is_empty()),
            cpuset_mems: self.cpuset_mems.filter(|s| !s.is_empty()),
            pids_limit: self.pids_limit,
            restart_policy,
        }
    }
}

async fn update(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: UpdateBody = json_body(&body)?;
    let warnings = engine.update_container(&id, body.request()).await?;
    Ok(json(&serde_json::json!({ "Warnings": warnings })))
}
