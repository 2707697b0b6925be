//! `POST /commit?container=C&repo=R&tag=T&comment=M&author=A&changes=…`:
//! `docker commit`, a new image from a container's writable layer on top of
//! its image. The new image's config is the container's (the request body's
//! non-null fields win), with the `changes` applied; its history entry names
//! the container's command. A running container is paused for the commit
//! unless `pause=0` (`docker commit --pause=false`), where its backend can pause.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::{json as j, Map, Value};
use vmrun_images::CommitOptions;

use super::images::{new_image_reference, query_values};
use super::query::{docker_bool_default_true, non_empty, yes, DockerQuery};
use super::AppState;
use crate::error::{ApiError, ApiResult};

/// `POST /commit`'s parameters (`changes` may repeat and is read apart).
#[derive(serde::Deserialize)]
pub struct CommitQuery {
    #[serde(default, deserialize_with = "non_empty")]
    container: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    repo: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    tag: Option<String>,
    comment: Option<String>,
    author: Option<String>,
    #[serde(default = "yes", deserialize_with = "docker_bool_default_true")]
    pause: bool,
}

/// The most a commit request's body (a container config) may hold.
const MAX_BODY: usize = 1024 * 1024;

pub async fn commit(
    State(engine): State<AppState>,
    DockerQuery(q): DockerQuery<CommitQuery>,
    req: Request,
) -> ApiResult<Response> {
    let key = q
        .container
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("container is required"))?;
    let rec = engine.container(key)?;
    let changes = query_values(req.uri(), "changes");
    let reference = new_image_reference(q.repo.as_deref(), q.tag.as_deref())?;
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
        .to_bytes();
    if body.len() > MAX_BODY {
        return Err(ApiError::bad_request(
            "the container config in the body is too large",
        ));
    }
    let mut config = match serde_json::to_value(&rec.config) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(overrides)) => {
                config.extend(overrides.into_iter().filter(|(_, v)| !v.is_null()))
            }
            Ok(Value::Null) => {}
            Ok(_) | Err(_) => {
                return Err(ApiError::bad_request(
                    "the request body must be a container config (a JSON object)",
                ))
            }
        }
    }
    let created_by = rec.config.cmd.clone().unwrap_or_default().join(" ");
    let opts = CommitOptions {
        reference,
        message: q.comment.clone(),
        author: q.author.clone(),
        changes,
        config,
        created_by,
        take_layer_dir: false,
    };
    let images = engine.images.clone();
    let parent = rec.image_id.clone();
    let pause = q.pause;
    let paused_here = pause
        && rec.is_running()
        && !rec.state.paused
        && engine.pause_container(&rec.id).await.is_ok();
    let layer = match engine.writable_layer(&rec).await {
        Ok(Some(layer)) => Ok(layer),
        Ok(None) => Err(ApiError::bad_request(format!(
            "cannot commit container {}: its isolation ({}) has no writable layer on this host",
            rec.name, rec.isolation
        ))),
        Err(e) => Err(ApiError::from(e)),
    };
    let committed = match layer {
        Ok(layer) => {
            tokio::task::spawn_blocking(move || images.commit(&parent, &layer.path, &opts))
                .await
                .map_err(|e| ApiError::internal(format!("commit task failed: {e}")))
        }
        Err(e) => Err(e),
    };
    // As dockerd: the commit event, then the unpause.
    let committed = committed.and_then(|c| c.map_err(ApiError::from));
    if let Ok(committed) = &committed {
        engine.events.emit(
            "container",
            "commit",
            &rec.id,
            &[
                ("name", rec.name.trim_start_matches('/').to_owned()),
                ("imageID", committed.id.clone()),
            ],
        );
    }
    if paused_here {
        if let Err(e) = engine.unpause_container(&rec.id).await {
            tracing::warn!("unpausing {} after the commit: {e}", rec.short_id());
        }
    }
    let committed = committed?;
    Ok((StatusCode::CREATED, axum::Json(j!({ "Id": committed.id }))).into_response())
}
