//! A container's files over the API: `docker cp` (`HEAD`/`GET`/`PUT
//! /containers/{id}/archive?path=`), `docker export` (`GET /containers/{id}/export`) and
//! `docker diff` (`GET /containers/{id}/changes`).
//!
//! The path's stat travels in the `X-Docker-Container-Path-Stat` header as base64 of
//! its JSON, as dockerd sends it; archives are uncompressed tar streams.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use futures::TryStreamExt;

use super::query::{docker_bool, DockerQuery};
use super::{json, AppState};
use crate::backend::{ByteStream, ExtractOptions, PathStat};
use crate::error::{ApiError, ApiResult};

/// The archive routes' parameters.
#[derive(serde::Deserialize)]
struct ArchiveQuery {
    path: Option<String>,
    #[serde(
        rename = "noOverwriteDirNonDir",
        default,
        deserialize_with = "docker_bool"
    )]
    no_overwrite_dir_non_dir: bool,
    #[serde(rename = "copyUIDGID", default, deserialize_with = "docker_bool")]
    copy_uid_gid: bool,
}

type Q = DockerQuery<ArchiveQuery>;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/containers/{id}/archive",
            get(get_archive).head(head_archive).put(put_archive),
        )
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}/changes", get(changes))
}

fn path_of(q: &ArchiveQuery) -> ApiResult<&str> {
    q.path
        .as_deref()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("bad parameter: path cannot be empty"))
}

fn stat_header(stat: &PathStat) -> ApiResult<HeaderValue> {
    let json = serde_json::to_vec(stat)
        .map_err(|e| ApiError::internal(format!("encoding the path's stat: {e}")))?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(json);
    HeaderValue::from_str(&encoded)
        .map_err(|e| ApiError::internal(format!("encoding the path's stat: {e}")))
}

fn tar_response(stream: ByteStream, stat: Option<&PathStat>) -> ApiResult<Response> {
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(
        "Content-Type",
        HeaderValue::from_static("application/x-tar"),
    );
    if let Some(stat) = stat {
        h.insert("X-Docker-Container-Path-Stat", stat_header(stat)?);
    }
    Ok(res)
}

async fn head_archive(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): Q,
) -> ApiResult<Response> {
    let stat = engine.container_path_stat(&id, path_of(&q)?).await?;
    let mut res = StatusCode::OK.into_response();
    res.headers_mut()
        .insert("X-Docker-Container-Path-Stat", stat_header(&stat)?);
    res.headers_mut().insert(
        "Content-Type",
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(res)
}

async fn get_archive(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): Q,
) -> ApiResult<Response> {
    let (stat, stream) = engine.container_archive(&id, path_of(&q)?).await?;
    tar_response(stream, Some(&stat))
}

async fn put_archive(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): Q,
    req: Request,
) -> ApiResult<Response> {
    let path = path_of(&q)?.to_owned();
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: q.no_overwrite_dir_non_dir,
        copy_uid_gid: q.copy_uid_gid,
    };
    let body: ByteStream = Box::pin(
        req.into_body()
            .into_data_stream()
            .map_err(|e| std::io::Error::other(format!("reading the request body: {e}"))),
    );
    engine.container_extract(&id, &path, opts, body).await?;
    Ok(StatusCode::OK.into_response())
}

async fn export(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let stream = engine.container_export(&id).await?;
    tar_response(stream, None)
}

async fn changes(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let changes = engine.container_changes(&id).await?;
    let out: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| serde_json::json!({ "Path": c.path, "Kind": c.kind as u8 }))
        .collect();
    Ok(json(&out))
}
