//! vmrun's own endpoints for the shared VM (`vmrun vm status|start|stop`), outside
//! Docker's API: `GET /vmrun/vm`, `POST /vmrun/vm/start`, `POST /vmrun/vm/stop?t=SECONDS`.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::{json, AppState};
use crate::error::{ApiError, ApiResult};

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/vmrun/vm", get(status))
        .route("/vmrun/vm/start", post(start))
        .route("/vmrun/vm/stop", post(stop))
}

async fn status(State(engine): State<AppState>) -> ApiResult<Response> {
    Ok(json(&engine.shared_vm_status().await?))
}

async fn start(State(engine): State<AppState>) -> ApiResult<Response> {
    Ok(json(&engine.shared_vm_start().await?))
}

/// `POST /vmrun/vm/stop`'s parameter: seconds to wait for the containers.
#[derive(serde::Deserialize)]
pub struct StopQuery {
    t: Option<String>,
}

async fn stop(
    State(engine): State<AppState>,
    super::query::DockerQuery(q): super::query::DockerQuery<StopQuery>,
) -> ApiResult<Response> {
    let t = match q.t.filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid value for t: {t}")))?,
        ),
    };
    let was_running = engine.shared_vm_stop(t).await?;
    let mut status = engine.shared_vm_status().await?;
    if !was_running {
        status.last_exit = Some("it was not running".into());
    }
    Ok(json(&status))
}
