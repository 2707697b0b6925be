//! Image routes. Image names contain slashes, so `/images/...` is dispatched by hand.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::{ImageDeleteResponseItem, ImageSummary};
use serde_json::json as j;
use vmrun_images::{Image, RemovedItem};

use super::{json, query_bool, AppState};
use crate::error::{ApiError, ApiResult};

fn created_unix(img: &Image) -> i64 {
    img.created
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

fn summary(img: &Image, containers: i64) -> ImageSummary {
    let labels = img
        .config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default();
    ImageSummary {
        id: img.id.clone(),
        parent_id: String::new(),
        repo_tags: img.repo_tags.clone(),
        repo_digests: img.repo_digests.clone(),
        created: created_unix(img),
        size: img.size as i64,
        shared_size: -1,
        labels,
        containers,
        manifests: None,
        descriptor: None,
    }
}

fn containers_using(engine: &crate::engine::Engine, image_id: &str) -> Vec<String> {
    engine
        .store
        .list()
        .into_iter()
        .filter(|c| c.image_id == image_id)
        .map(|c| c.id)
        .collect()
}

/// `GET /images/json`.
pub async fn list(State(engine): State<AppState>) -> ApiResult<Response> {
    let images = engine.images.list()?;
    let out: Vec<ImageSummary> = images
        .iter()
        .map(|i| summary(i, containers_using(&engine, &i.id).len() as i64))
        .collect();
    Ok(json(&out))
}

/// `POST /images/load`: a docker-archive or OCI layout tar in the body, spooled to a
/// temporary file (archives can be large) and then loaded.
pub async fn load(State(engine): State<AppState>, body: Body) -> ApiResult<Response> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let tmp_dir = engine.config.data_root.join("tmp");
    tokio::fs::create_dir_all(&tmp_dir)
        .await
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", tmp_dir.display())))?;
    let spool = tempfile::NamedTempFile::new_in(&tmp_dir)
        .map_err(|e| ApiError::internal(format!("creating a spool file: {e}")))?;
    let mut file = tokio::fs::File::from_std(
        spool
            .reopen()
            .map_err(|e| ApiError::internal(format!("opening the spool file: {e}")))?,
    );
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the archive: {e}")))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format!("spooling the archive: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::internal(format!("spooling the archive: {e}")))?;
    drop(file);
    let images = engine.images.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let f = spool
            .reopen()
            .map_err(|source| vmrun_images::ImageError::Io {
                context: "reopening the spooled archive".into(),
                source,
            })?;
        images.load(std::io::BufReader::new(f))
    })
    .await
    .map_err(|e| ApiError::internal(format!("load task failed: {e}")))??;
    let mut out = String::new();
    for l in &loaded {
        let what = if l.reference.starts_with("sha256:") {
            "image ID"
        } else {
            "image"
        };
        out.push_str(&j!({ "stream": format!("Loaded {what}: {}\n", l.reference) }).to_string());
        out.push('\n');
        engine
            .events
            .emit("image", "load", &l.id, &[("name", l.reference.clone())]);
    }
    Ok(Response::builder()
        .header("Content-Type", "application/json")
        .body(Body::from(out))
        .unwrap_or_default())
}

/// Everything else under `/images/`, and the 404 for unknown paths.
pub async fn dispatch(State(engine): State<AppState>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let q: HashMap<String, String> = Query::try_from_uri(req.uri())
        .map(|Query(q)| q)
        .unwrap_or_default();
    let result = match path.strip_prefix("/images/") {
        Some("create") if method == Method::POST => create(&q),
        Some(rest) => match (method, rest) {
            (Method::GET, r) if r.ends_with("/json") => inspect(&engine, &r[..r.len() - 5]),
            (Method::POST, r) if r.ends_with("/tag") => tag(&engine, &r[..r.len() - 4], &q),
            (Method::DELETE, name) => remove(&engine, name, &q),
            _ => Err(not_found(&path)),
        },
        None => Err(not_found(&path)),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn not_found(path: &str) -> ApiError {
    ApiError::not_found(format!("page not found: {path}"))
}

fn create(q: &HashMap<String, String>) -> ApiResult<Response> {
    let image = q.get("fromImage").cloned().unwrap_or_default();
    Err(ApiError::not_found(format!(
        "pull access denied for {image}: registry pulls are not available in this vmrun build yet; load the image with `vmrun load -i FILE`"
    )))
}

fn inspect(engine: &crate::engine::Engine, name: &str) -> ApiResult<Response> {
    let img = engine.images.resolve(name).map_err(|e| match e {
        vmrun_images::ImageError::NotFound(_) => {
            ApiError::not_found(format!("No such image: {name}"))
        }
        other => other.into(),
    })?;
    let cfg = img.config.config().clone().unwrap_or_default();
    let diff_ids = img.config.rootfs().diff_ids().clone();
    Ok(json(&j!({
        "Id": img.id,
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Parent": "",
        "Comment": "",
        "Created": img.created.clone().unwrap_or_default(),
        "DockerVersion": "",
        "Author": img.config.author().clone().unwrap_or_default(),
        "Config": {
            "Env": cfg.env(),
            "Cmd": cfg.cmd(),
            "Entrypoint": cfg.entrypoint(),
            "WorkingDir": cfg.working_dir().clone().unwrap_or_default(),
            "User": cfg.user().clone().unwrap_or_default(),
            "Labels": cfg.labels(),
            "ExposedPorts": cfg.exposed_ports().as_ref().map(|p| p.iter().map(|k| (k.clone(), j!({}))).collect::<serde_json::Map<_, _>>()),
            "StopSignal": cfg.stop_signal(),
        },
        "Architecture": img.architecture,
        "Os": img.os,
        "Size": img.size,
        "GraphDriver": { "Name": "overlay2", "Data": null },
        "RootFS": { "Type": "layers", "Layers": diff_ids },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    })))
}

fn tag(
    engine: &crate::engine::Engine,
    name: &str,
    q: &HashMap<String, String>,
) -> ApiResult<Response> {
    let repo = q
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("repository name is required"))?;
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.clone(),
    };
    engine.images.tag(name, &target)?;
    let id = engine.images.resolve(&target)?.id;
    engine.events.emit("image", "tag", &id, &[("name", target)]);
    Ok(StatusCode::CREATED.into_response())
}

fn remove(
    engine: &crate::engine::Engine,
    name: &str,
    q: &HashMap<String, String>,
) -> ApiResult<Response> {
    let _force = query_bool(q.get("force"));
    let img = engine.images.resolve(name).map_err(|e| match e {
        vmrun_images::ImageError::NotFound(_) => {
            ApiError::not_found(format!("No such image: {name}"))
        }
        other => other.into(),
    })?;
    let users = containers_using(engine, &img.id);
    let last_name = img.repo_tags.len() <= 1 || name.starts_with("sha256:");
    if !users.is_empty() && last_name {
        return Err(ApiError::conflict(format!(
            "conflict: unable to remove repository reference \"{name}\" (must remove container first) - container {} is using its referenced image {}",
            &users[0][..12],
            img.id.trim_start_matches("sha256:").get(..12).unwrap_or(&img.id)
        )));
    }
    let removed = engine.images.remove(name)?;
    let items: Vec<ImageDeleteResponseItem> = removed
        .into_iter()
        .map(|r| match r {
            RemovedItem::Untagged(t) => ImageDeleteResponseItem {
                untagged: Some(t),
                deleted: None,
            },
            RemovedItem::Deleted(d) => ImageDeleteResponseItem {
                untagged: None,
                deleted: Some(d),
            },
        })
        .collect();
    engine
        .events
        .emit("image", "delete", &img.id, &[("name", name.to_string())]);
    Ok(json(&items))
}
