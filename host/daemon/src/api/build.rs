//! `POST /build`: the classic builder's protocol, as `docker build` (without
//! BuildKit), `docker-compose build` and `vmrun build` speak it. The body is the build
//! context as a tar (plain or gzip); the query carries the options (`t`, `dockerfile`,
//! `buildargs`, `labels`, `target`, `nocache`, `pull`, `rm`, `forcerm`, `q`,
//! `networkmode`, `isolation`). Problems found before the first step (a bad query, a bad context
//! tar, a Dockerfile syntax error) are 4xx answers; once steps run, the response is the
//! JSON-lines progress stream and a failure is its last line.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use serde::Deserialize;

use super::images::{query_values, spool_body};
use super::query::{docker_bool, docker_bool_default_true, non_empty, yes, DockerQuery};
use super::AppState;
use crate::builder::{build_tmp, Build, BuildOptions, ContextError, ContextSpace, Progress};
use crate::error::{ApiError, ApiResult};

/// `POST /build`'s parameters (the tags, `t`, may repeat and are read apart).
#[derive(Deserialize)]
pub struct BuildQuery {
    #[serde(default, deserialize_with = "non_empty")]
    version: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    remote: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    labels: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    buildargs: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    cachefrom: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    isolation: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    networkmode: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    target: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    dockerfile: Option<String>,
    #[serde(default, deserialize_with = "docker_bool")]
    nocache: bool,
    #[serde(default, deserialize_with = "docker_bool")]
    pull: bool,
    #[serde(default = "yes", deserialize_with = "docker_bool_default_true")]
    rm: bool,
    #[serde(default, deserialize_with = "docker_bool")]
    forcerm: bool,
    #[serde(default, deserialize_with = "docker_bool")]
    q: bool,
}

/// A JSON object of strings in a query value (`buildargs`, `labels`).
fn json_map(value: Option<&str>, key: &str) -> ApiResult<BTreeMap<String, Option<String>>> {
    match value {
        None => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}"))),
    }
}

fn options(q: &BuildQuery, tags: Vec<String>) -> ApiResult<BuildOptions> {
    if q.version.as_deref() == Some("2") {
        return Err(ApiError::bad_request(
            "BuildKit builds (version=2) are not supported: this daemon speaks the classic builder protocol (DOCKER_BUILDKIT=0)",
        ));
    }
    if q.remote.is_some() {
        return Err(ApiError::bad_request(
            "remote build contexts are not supported: send the context as the request body",
        ));
    }
    for tag in &tags {
        vmrun_images::normalize_reference(tag)
            .map_err(|e| ApiError::bad_request(format!("invalid tag {tag:?}: {e}")))?;
    }
    let labels = json_map(q.labels.as_deref(), "labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    let cache_from: Vec<String> = match &q.cachefrom {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid cachefrom: {e}")))?,
        None => Vec::new(),
    };
    let isolation = q.isolation.clone();
    if let Some(i) = &isolation {
        crate::engine::requested_isolation(Some(i), None, crate::backend::Isolation::Native)?;
    }
    let network = q.networkmode.clone().filter(|n| n != "default");
    Ok(BuildOptions {
        tags,
        build_args: json_map(q.buildargs.as_deref(), "buildargs")?,
        labels,
        target: q.target.clone(),
        no_cache: q.nocache,
        pull: q.pull,
        remove: q.rm,
        force_remove: q.forcerm,
        network,
        isolation,
        cache_from,
    })
}

pub async fn build(
    State(engine): State<AppState>,
    DockerQuery(q): DockerQuery<BuildQuery>,
    req: Request,
) -> ApiResult<Response> {
    let tags: Vec<String> = query_values(req.uri(), "t")
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect();
    let opts = options(&q, tags)?;
    let quiet = q.q;
    let dockerfile = q
        .dockerfile
        .as_deref()
        .map(|d| {
            d.trim_start_matches("./")
                .trim_start_matches('/')
                .to_owned()
        })
        .unwrap_or_else(|| "Dockerfile".to_owned());
    let spool = spool_body(&engine, req.into_body(), "the build context").await?;
    let tmp = build_tmp(&engine.config.data_root);
    let space = tokio::task::spawn_blocking(move || -> ApiResult<ContextSpace> {
        let file = spool
            .reopen()
            .map_err(|e| ApiError::internal(format!("reopening the spooled context: {e}")))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        ContextSpace::unpack(&tmp, file, size).map_err(|e| match e {
            ContextError::Internal(m) => ApiError::internal(m),
            ContextError::BadContext(e) => {
                ApiError::bad_request(format!("invalid build context: {e}"))
            }
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("context task failed: {e}")))??;

    let (progress, rx) = Progress::new(quiet);
    let context = space.context();
    let prepare_engine = engine.clone();
    let prepare_progress = progress.clone();
    let build = tokio::task::spawn_blocking(move || {
        Build::prepare(prepare_engine, context, &dockerfile, opts, prepare_progress)
    })
    .await
    .map_err(|e| ApiError::internal(format!("build task failed: {e}")))?
    .map_err(ApiError::bad_request)?;

    tokio::spawn(async move {
        match build.execute().await {
            Ok(id) if quiet => progress.text(format!("{id}\n")),
            Ok(_) => {}
            Err(failure) => progress.error(&failure.message, failure.code),
        }
        drop(space);
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Ok(Response::builder()
        .header("Content-Type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}
