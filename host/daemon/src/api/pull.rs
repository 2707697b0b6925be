//! `POST /images/create?fromImage=X&tag=Y[&platform=os/arch]`: pulls from a
//! registry, streaming docker's progress JSON. With neither a `tag` parameter
//! nor a tag or digest in `fromImage` (what `docker pull --all-tags` sends),
//! every tag of the repository is pulled, one after another, as dockerd does.
//!
//! Errors before any progress are plain HTTP errors; later ones are
//! `{"errorDetail":…,"error":…}` lines. Credentials: `X-Registry-Auth`, else
//! `$VMRUN_DOCKER_CONFIG` or `$HOME/.docker/config.json`.

use axum::response::Response;
use serde_json::json as j;
use vmrun_images::{ImageError, PullOptions, PulledImage, Reference};

use super::images::{line, progress_line, progress_stream, registry_auth};
use super::AppState;
use crate::error::{ApiError, ApiResult};

/// What the blocking pull task tells the response stream.
enum PullMsg {
    /// `Pulling from <path>` of the next reference; held back until that pull
    /// shows progress, so a failure before it is still a plain HTTP error.
    Head(String),
    Line(String),
    Pulled(Box<PulledImage>),
    /// The closing `Status: …` line.
    Finished(String),
    Failed(ImageError),
}

pub(super) async fn create(
    engine: &AppState,
    q: &super::images::ImagesQuery,
    headers: &axum::http::HeaderMap,
) -> ApiResult<Response> {
    let from = q.from_image.as_ref().ok_or_else(|| {
        ApiError::bad_request("fromImage is required (importing with fromSrc is not supported)")
    })?;
    let tag = q.tag.as_ref();
    let reference = match tag {
        Some(_) if from.contains('@') => from.clone(),
        Some(tag) if tag.starts_with("sha256:") => format!("{from}@{tag}"),
        Some(tag) => format!("{from}:{tag}"),
        None => from.clone(),
    };
    let named = Reference::parse(&reference)?;
    let all_tags = named.tag().is_none() && named.digest().is_none();
    let platform = match &q.platform {
        Some(p) => Some(p.parse::<vmrun_images::Platform>()?),
        None => None,
    };
    let (auth_config_path, credentials) = registry_auth(headers);
    let opts = PullOptions {
        platform,
        auth_config_path,
        credentials,
        hosts: engine.config.registry_hosts.clone(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PullMsg>(256);
    let images = engine.images.clone();
    tokio::task::spawn_blocking(move || {
        let send = |msg| {
            let _ = tx.blocking_send(msg);
        };
        let targets = if all_tags {
            match targets_of_repository(&named, &opts) {
                Ok(t) => t,
                Err(e) => return send(PullMsg::Failed(e)),
            }
        } else {
            vec![named.clone()]
        };
        let mut updated = false;
        let mut last = String::new();
        for target in &targets {
            let id = target.digest().or(target.tag()).unwrap_or("latest");
            send(PullMsg::Head(line(
                &j!({ "status": format!("Pulling from {}", target.path()), "id": id }),
            )));
            let result = images.pull(&target.to_string(), &opts, &|p| {
                send(PullMsg::Line(progress_line(&p)));
            });
            match result {
                Ok(pulled) => {
                    updated |= pulled.updated;
                    last.clone_from(&pulled.reference);
                    send(PullMsg::Pulled(Box::new(pulled)));
                }
                Err(e) => return send(PullMsg::Failed(e)),
            }
        }
        // The reference docker names in the last line: the repository for all tags.
        let shown = if all_tags { named.repository() } else { last };
        send(PullMsg::Finished(if updated {
            format!("Status: Downloaded newer image for {shown}")
        } else {
            format!("Status: Image is up to date for {shown}")
        }));
    });

    // Hold the heads back until the first pull shows progress or fails.
    let mut held = String::new();
    let first = loop {
        match rx.recv().await {
            Some(PullMsg::Head(h)) => held.push_str(&h),
            Some(PullMsg::Failed(e)) => return Err(e.into()),
            Some(other) => break other,
            None => return Err(ApiError::internal("the pull task ended without a result")),
        }
    };
    let engine = engine.clone();
    let render = move |msg: PullMsg| -> String {
        match msg {
            PullMsg::Head(l) | PullMsg::Line(l) => l,
            PullMsg::Pulled(pulled) => {
                engine.events.emit(
                    "image",
                    "pull",
                    &pulled.image.id,
                    &[("name", pulled.reference.clone())],
                );
                line(&j!({ "status": format!("Digest: {}", pulled.digest) }))
            }
            PullMsg::Finished(status) => line(&j!({ "status": status })),
            PullMsg::Failed(e) => {
                let message = e.to_string();
                line(&j!({ "errorDetail": { "message": message }, "error": message }))
            }
        }
    };
    let first_chunk = format!("{held}{}", render(first));
    Ok(progress_stream(first_chunk, rx, render))
}

/// Every tag of `repository`'s repository, as references to pull.
fn targets_of_repository(
    repository: &Reference,
    opts: &PullOptions,
) -> Result<Vec<Reference>, ImageError> {
    let name = repository.full_repository();
    let tags = vmrun_images::registry::list_tags(&name, opts)?;
    if tags.is_empty() {
        return Err(ImageError::NotFound(format!(
            "repository {} has no tags",
            repository.repository()
        )));
    }
    tags.iter()
        .map(|tag| Reference::parse(&format!("{name}:{tag}")))
        .collect()
}
