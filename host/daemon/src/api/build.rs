//! `POST /build`: the classic builder's protocol, as `docker build` (without
//! BuildKit), `docker-compose build` and `vmrun build` speak it. The body is the build
//! context as a tar (plain or gzip); the query carries the options (`t`, `dockerfile`,
//! `buildargs`, `labels`, `target`, `nocache`, `pull`, `rm`, `forcerm`, `q`,
//! `networkmode`, `isolation`). Problems found before the first step (a bad query, a bad context
//! tar, a Dockerfile syntax error) are 4xx answers; once steps run, the response is the
//! JSON-lines progress stream and a failure is its last line.

use std::collections::{BTreeMap, HashMap};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::response::Response;

use super::images::{query_values, spool_body};
use super::{query_bool, AppState};
use crate::builder::{build_tmp, Build, BuildOptions, ContextError, ContextSpace, Progress};
use crate::error::{ApiError, ApiResult};

/// A JSON object of strings in a query value (`buildargs`, `labels`).
fn json_map(q: &HashMap<String, String>, key: &str) -> ApiResult<BTreeMap<String, Option<String>>> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}"))),
    }
}

fn options(q: &HashMap<String, String>, tags: Vec<String>) -> ApiResult<BuildOptions> {
    if q.get("version").is_some_and(|v| v == "2") {
        return Err(ApiError::bad_request(
            "BuildKit builds (version=2) are not supported: this daemon speaks the classic builder protocol (DOCKER_BUILDKIT=0)",
        ));
    }
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(
            "remote build contexts are not supported: send the context as the request body",
        ));
    }
    for tag in &tags {
        vmrun_images::normalize_reference(tag)
            .map_err(|e| ApiError::bad_request(format!("invalid tag {tag:?}: {e}")))?;
    }
    let labels = json_map(q, "labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    let cache_from: Vec<String> = match q.get("cachefrom").filter(|c| !c.is_empty()) {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid cachefrom: {e}")))?,
        None => Vec::new(),
    };
    let isolation = q.get("isolation").filter(|i| !i.is_empty()).cloned();
    if let Some(i) = &isolation {
        crate::engine::requested_isolation(Some(i), None, crate::backend::Isolation::Native)?;
    }
    let network = q
        .get("networkmode")
        .filter(|n| !n.is_empty() && n.as_str() != "default")
        .cloned();
    Ok(BuildOptions {
        tags,
        build_args: json_map(q, "buildargs")?,
        labels,
        target: q.get("target").filter(|t| !t.is_empty()).cloned(),
        no_cache: query_bool(q.get("nocache")),
        pull: query_bool(q.get("pull")),
        remove: q.get("rm").is_none_or(|v| query_bool(Some(v))),
        force_remove: query_bool(q.get("forcerm")),
        network,
        isolation,
        cache_from,
    })
}

pub async fn build(
    State(engine): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> ApiResult<Response> {
    let tags: Vec<String> = query_values(req.uri(), "t")
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect();
    let opts = options(&q, tags)?;
    let quiet = query_bool(q.get("q"));
    let dockerfile = q
        .get("dockerfile")
        .filter(|d| !d.is_empty())
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
