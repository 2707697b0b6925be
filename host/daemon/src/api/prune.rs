//! `POST /containers/prune`, `/networks/prune` and `/volumes/prune`, with docker's
//! filters and response bodies (`ContainersDeleted`, `NetworksDeleted`, `VolumesDeleted`,
//! `SpaceReclaimed`). Volumes: a client speaking API 1.42 or later prunes anonymous
//! volumes only unless it sends `all=true`; older clients prune every unused volume.

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use serde_json::json as j;

use super::query::{DockerQuery, FiltersQuery};
use super::{json, AppState, RequestedVersion};
use crate::engine::prune::PruneFilters;
use crate::error::ApiResult;

/// Prune routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/prune", post(containers))
        .route("/networks/prune", post(networks))
        .route("/volumes/prune", post(volumes))
}

type Q = DockerQuery<FiltersQuery>;

async fn containers(State(engine): State<AppState>, DockerQuery(q): Q) -> ApiResult<Response> {
    let filters = PruneFilters::parse(
        &super::parse_filters(q.filters.as_deref())?,
        &["until", "label", "label!"],
    )?;
    let measure = |rec: &crate::state::ContainerRecord| {
        engine
            .container_files(rec)
            .ok()
            .and_then(|f| f.writable_layer)
            .map_or(0, |dir| super::usage::dir_size(&dir))
    };
    let (deleted, reclaimed) = engine.prune_containers(&filters, &measure).await;
    Ok(json(&j!({
        // Arrays even when empty, as the 1.45 spec has them (dockerd 20.10 sends `null`).
        "ContainersDeleted": deleted,
        "SpaceReclaimed": reclaimed,
    })))
}

async fn networks(State(engine): State<AppState>, DockerQuery(q): Q) -> ApiResult<Response> {
    let filters = PruneFilters::parse(
        &super::parse_filters(q.filters.as_deref())?,
        &["until", "label", "label!"],
    )?;
    let deleted = engine.prune_networks(&filters).await?;
    Ok(json(&j!({ "NetworksDeleted": deleted })))
}

async fn volumes(
    State(engine): State<AppState>,
    version: Option<Extension<RequestedVersion>>,
    DockerQuery(q): Q,
) -> ApiResult<Response> {
    let raw = super::parse_filters(q.filters.as_deref())?;
    let mut filters = PruneFilters::parse(&raw, &["label", "label!", "all"])?;
    let before_1_42 = version.is_some_and(|Extension(v)| v.older_than(1, 42));
    if before_1_42 && !raw.contains_key("all") {
        filters.all = true;
    }
    let measure = |dir: &std::path::Path| super::usage::dir_size(dir);
    let (deleted, reclaimed) = engine.prune_volumes(&filters, &measure).await;
    Ok(json(&j!({
        "VolumesDeleted": deleted,
        "SpaceReclaimed": reclaimed,
    })))
}
