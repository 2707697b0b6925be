//! Container routes: create, list, inspect, lifecycle, wait, remove, top, stats.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use bollard_stubs::models::{ContainerCreateBody, ContainerCreateResponse, ContainerTopResponse};

use serde::Deserialize;

use super::query::{docker_bool, non_empty, DockerQuery};
use super::{convert, json, json_body, parse_filters, streams, AppState};
use crate::engine::{CreateRequest, WaitCondition};
use crate::error::{ApiError, ApiResult};
use crate::state::Status;

/// Parameters of `create`, `rename`, `kill`, `wait` and `remove`.
#[derive(Deserialize)]
struct ContainerQuery {
    #[serde(default, deserialize_with = "non_empty")]
    name: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    signal: Option<String>,
    condition: Option<String>,
    #[serde(default, deserialize_with = "docker_bool")]
    force: bool,
    /// `rm -v`: the container's anonymous volumes go too.
    #[serde(default, deserialize_with = "docker_bool")]
    v: bool,
}

/// `list`'s parameters.
#[derive(Deserialize)]
struct ListQuery {
    #[serde(default, deserialize_with = "docker_bool")]
    all: bool,
    filters: Option<String>,
    limit: Option<String>,
}

/// `stop`'s and `restart`'s: the seconds to wait (`t`, or `timeout` of older clients).
#[derive(Deserialize)]
struct StopQuery {
    t: Option<String>,
    timeout: Option<String>,
}

/// A terminal's size (`resize` of a container or an exec).
#[derive(Deserialize)]
pub(super) struct SizeQuery {
    h: Option<String>,
    w: Option<String>,
}

/// Container routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(streams::stats))
        .route("/containers/{id}/attach", post(streams::attach))
        .route("/containers/{id}/logs", get(streams::logs))
        .route("/containers/{id}", delete(remove))
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn not_modified() -> Response {
    StatusCode::NOT_MODIFIED.into_response()
}

/// The create body, and `HostConfig.Isolation` as sent: docker's model knows only
/// docker's isolation names, so another name (`vm`) is taken out before decoding.
/// `Cmd`, `Entrypoint` and `Shell` may be a string, as dockerd's `StrSlice` allows.
fn create_body(body: &Bytes) -> ApiResult<(ContainerCreateBody, Option<String>)> {
    let mut raw: serde_json::Value = json_body(body)?;
    if let Some(obj) = raw.as_object_mut() {
        for key in ["Cmd", "Entrypoint", "Shell"] {
            if let Some(v) = obj.get_mut(key) {
                if let serde_json::Value::String(s) = v {
                    *v = serde_json::Value::Array(vec![serde_json::Value::String(s.clone())]);
                }
            }
        }
    }
    let decode = |v: serde_json::Value| {
        serde_json::from_value::<ContainerCreateBody>(v)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    };
    let typed = decode(raw.clone());
    if let Ok(b) = typed {
        let isolation = b
            .host_config
            .as_ref()
            .and_then(|h| h.isolation)
            .map(|i| i.to_string());
        return Ok((b, isolation));
    }
    let isolation = raw
        .get_mut("HostConfig")
        .and_then(serde_json::Value::as_object_mut)
        .and_then(|h| match h.get("Isolation") {
            Some(serde_json::Value::String(_)) => h.remove("Isolation"),
            _ => None,
        });
    match isolation {
        Some(serde_json::Value::String(i)) => Ok((decode(raw)?, Some(i))),
        _ => typed.map(|b| (b, None)),
    }
}

async fn create(
    State(engine): State<AppState>,
    DockerQuery(q): DockerQuery<ContainerQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    let (body, isolation) = create_body(&body)?;
    let (id, warnings) = engine
        .create_container(CreateRequest {
            name: q.name,
            body,
            isolation,
        })
        .await?;
    let resp = ContainerCreateResponse { id, warnings };
    Ok((StatusCode::CREATED, axum::Json(resp)).into_response())
}

async fn list(
    State(engine): State<AppState>,
    DockerQuery(q): DockerQuery<ListQuery>,
) -> ApiResult<Response> {
    let all = q.all;
    let filters = parse_filters(q.filters.as_deref())?;
    let limit = q
        .limit
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0);
    let mut out = Vec::new();
    for rec in engine.store.list() {
        let status = if rec.state.paused {
            "paused"
        } else {
            rec.state.status.as_str()
        };
        let restarting = engine.restarting(&rec.id);
        if !all
            && rec.state.status != Status::Running
            && !restarting
            && !filters.contains_key("status")
        {
            continue;
        }
        let keep = filters.iter().all(|(k, vals)| {
            let test = |v: &String| match k.as_str() {
                "status" => status == v,
                "name" => rec.name.contains(v.trim_start_matches('/')),
                "id" => rec.id.starts_with(v.as_str()),
                "label" => rec
                    .config
                    .labels
                    .as_ref()
                    .is_some_and(|l| crate::engine::prune::label_holds(l.iter(), v)),
                "ancestor" => rec.image == *v || rec.image_id.starts_with(v.as_str()),
                "network" => crate::engine::networks::networks_of(&rec)
                    .iter()
                    .any(|n| n.network == *v),
                "exited" => {
                    rec.state.status == Status::Exited && rec.state.exit_code.to_string() == *v
                }
                "health" => rec.health.as_ref().map_or("none", |h| h.status.as_str()) == v,
                _ => true,
            };
            // Every `label` filter must hold (docker ANDs them); other keys take any value.
            if k == "label" {
                vals.iter().all(test)
            } else {
                vals.iter().any(test)
            }
        });
        if keep {
            let mut summary = convert::summary(&rec);
            if restarting {
                // Waiting for its restart, as `docker ps` shows it.
                summary.state = Some(bollard_stubs::models::ContainerSummaryStateEnum::RESTARTING);
                summary.status = summary
                    .status
                    .map(|s| s.replacen("Exited", "Restarting", 1));
            }
            out.push(summary);
        }
    }
    if let Some(l) = limit {
        out.truncate(l as usize);
    }
    Ok(json(&out))
}

async fn inspect(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let rec = engine.container(&id)?;
    let files = engine.container_files(&rec).unwrap_or_default();
    let mut v = convert::inspect(&rec, &files);
    if engine.restarting(&rec.id) {
        // dockerd counts a container waiting for its restart as running.
        v["State"]["Restarting"] = true.into();
        v["State"]["Running"] = true.into();
        v["State"]["Status"] = "restarting".into();
    }
    Ok(json(&v))
}

async fn start(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(if engine.start_container(&id).await? {
        no_content()
    } else {
        not_modified()
    })
}

fn timeout(q: &StopQuery) -> ApiResult<Option<i64>> {
    match q.t.as_ref().or(q.timeout.as_ref()) {
        None => Ok(None),
        Some(t) => t
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid value for t: {t}"))),
    }
}

async fn stop(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<StopQuery>,
) -> ApiResult<Response> {
    let t = timeout(&q)?;
    Ok(if engine.stop_container(&id, t).await? {
        no_content()
    } else {
        not_modified()
    })
}

async fn restart(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<StopQuery>,
) -> ApiResult<Response> {
    let t = timeout(&q)?;
    engine.restart_container(&id, t).await?;
    Ok(no_content())
}

async fn kill(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<ContainerQuery>,
) -> ApiResult<Response> {
    // An empty `signal=` is the default, as in dockerd.
    let sig = q.signal.as_deref().unwrap_or("SIGKILL");
    engine.kill_container(&id, sig).await?;
    Ok(no_content())
}

async fn wait(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<ContainerQuery>,
) -> ApiResult<Response> {
    let cond = WaitCondition::parse(q.condition.as_deref())?;
    let fut = engine.wait_container(&id, cond)?;
    // Headers go out at once (the docker CLI waits for them before it starts the
    // container); the body follows at the exit.
    let body = futures::stream::once(async move {
        let v = match fut.await {
            Ok(code) => serde_json::json!({ "StatusCode": code }),
            Err(e) => {
                serde_json::json!({ "StatusCode": -1, "Error": { "Message": e.to_string() } })
            }
        };
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::io::Error>(Bytes::from(line))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .body(Body::from_stream(body))
        .unwrap_or_default())
}

async fn rename(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<ContainerQuery>,
) -> ApiResult<Response> {
    let name = q
        .name
        .ok_or_else(|| ApiError::bad_request("name is required"))?;
    engine.rename_container(&id, &name)?;
    Ok(no_content())
}

pub(super) fn dims(q: &SizeQuery) -> ApiResult<(u16, u16)> {
    let get = |k: &str, v: &Option<String>| -> ApiResult<u16> {
        v.as_deref()
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| ApiError::bad_request(format!("invalid or missing {k}")))
    };
    Ok((get("h", &q.h)?, get("w", &q.w)?))
}

async fn resize(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<SizeQuery>,
) -> ApiResult<Response> {
    let (h, w) = dims(&q)?;
    engine.resize_container(&id, h, w).await?;
    Ok(StatusCode::OK.into_response())
}

async fn remove(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<ContainerQuery>,
) -> ApiResult<Response> {
    let rec = engine.container(&id)?;
    engine.remove_container(&rec.id, q.force).await?;
    if q.v {
        engine.remove_anonymous_volumes(&rec).await;
    }
    Ok(no_content())
}

async fn top(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let rec = engine.container(&id)?;
    let processes = engine.container_top(&rec).await?;
    let titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];
    Ok(json(&ContainerTopResponse {
        titles: Some(titles.iter().map(|t| t.to_string()).collect()),
        processes: Some(processes),
    }))
}
