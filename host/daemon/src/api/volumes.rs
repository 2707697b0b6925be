//! Volume routes.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bollard_stubs::models::{Volume, VolumeCreateRequest, VolumeListResponse};

use super::{json, json_body, AppState};
use crate::engine::volumes::Volume as StoredVolume;
use crate::error::{ApiError, ApiResult};

/// Volume routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

fn model(v: &StoredVolume) -> Volume {
    Volume {
        name: v.name.clone(),
        driver: "local".into(),
        mountpoint: v.mountpoint.display().to_string(),
        created_at: Some(v.created.clone()),
        status: None,
        labels: v.labels.clone(),
        scope: Some(bollard_stubs::models::VolumeScopeEnum::LOCAL),
        cluster_volume: None,
        options: HashMap::new(),
        usage_data: None,
    }
}

async fn list(State(engine): State<AppState>) -> ApiResult<Response> {
    let volumes = engine.volumes.list().iter().map(model).collect();
    Ok(json(&VolumeListResponse {
        volumes: Some(volumes),
        warnings: Some(Vec::new()),
    }))
}

async fn create(State(engine): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: VolumeCreateRequest = json_body(&body)?;
    let name = match req.name.filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => hex::encode(rand::random::<[u8; 32]>()),
    };
    if let Some(d) = req
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "local")
    {
        return Err(ApiError::bad_request(format!(
            "volume driver {d} is not supported"
        )));
    }
    let v = engine
        .volumes
        .create_with_labels(&name, &req.labels.unwrap_or_default())?;
    engine.events.emit("volume", "create", &name, &[]);
    Ok((StatusCode::CREATED, axum::Json(model(&v))).into_response())
}

async fn inspect(State(engine): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    Ok(json(&model(&engine.volumes.get(&name)?)))
}

/// `DELETE /volumes/{name}`: a volume in use is refused whatever `force` says, as dockerd
/// refuses it (so the parameter is not read).
async fn remove(State(engine): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let users: Vec<String> = engine
        .store
        .list()
        .into_iter()
        .filter(|c| {
            c.mounts
                .iter()
                .any(|m| m.name.as_deref() == Some(name.as_str()))
        })
        .map(|c| c.id)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "remove {name}: volume is in use - [{}]",
            users.join(", ")
        )));
    }
    engine.remove_volume(&name).await?;
    engine.events.emit("volume", "destroy", &name, &[]);
    Ok(StatusCode::NO_CONTENT.into_response())
}
