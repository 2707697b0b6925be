//! `POST /images/{name}/push?tag=T`: pushes a stored image to its registry,
//! streaming docker's progress JSON as dockerd does:
//!
//! ```text
//! {"status":"The push refers to repository [127.0.0.1:5000/x]"}
//! {"status":"Preparing","progressDetail":{},"id":"<12 hex>"}
//! {"status":"Pushing","progressDetail":{"current":…,"total":…},"progress":"[==> ] …","id":"…"}
//! {"status":"Pushed","progressDetail":{},"id":"…"}
//! {"status":"latest: digest: sha256:… size: N"}
//! {"progressDetail":{},"aux":{"Tag":"latest","Digest":"sha256:…","Size":N}}
//! ```
//!
//! Failures after the first line are `{"errorDetail":{"message":…},"error":…}`
//! lines (dockerd answers 200 once it started); a malformed name is a 400.
//! An empty `tag` pushes every tag of the repository, as `docker push -a`.
//! Credentials as for pulls ([`super::images::registry_auth`]).

use axum::extract::{Query, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::json as j;
use vmrun_images::{ImageError, PushOptions, PushProgress, PushedImage, Reference};

use super::images::{line, progress_bar, progress_stream, registry_auth};
use super::AppState;
use crate::error::{ApiError, ApiResult};

/// What the blocking push task tells the response stream.
enum PushMsg {
    Line(String),
    Done(PushedImage),
    Failed(String),
}

/// `POST /images/{name}/push`; every other `/images/...` request goes on to
/// [`super::images::dispatch`] (image names contain slashes, so routes are
/// matched by hand).
/// `push`'s parameter: the tag (none: every tag of the repository).
#[derive(serde::Deserialize)]
struct TagQuery {
    tag: Option<String>,
}

pub async fn dispatch(State(engine): State<AppState>, req: Request) -> Response {
    let name = (req.method() == Method::POST)
        .then(|| req.uri().path().strip_prefix("/images/"))
        .flatten()
        .and_then(|rest| rest.strip_suffix("/push"))
        .filter(|name| !name.is_empty())
        .map(super::percent_decode);
    let Some(name) = name else {
        return super::images::dispatch(State(engine), req).await;
    };
    let tag: Option<String> = match Query::<TagQuery>::try_from_uri(req.uri()) {
        Ok(Query(q)) => q.tag,
        Err(e) => {
            return ApiError::bad_request(format!("invalid query: {}", e.body_text()))
                .into_response()
        }
    };
    push(&engine, &name, tag.as_deref(), req.headers()).unwrap_or_else(IntoResponse::into_response)
}

fn push(
    engine: &AppState,
    name: &str,
    tag: Option<&str>,
    headers: &axum::http::HeaderMap,
) -> ApiResult<Response> {
    let repository = Reference::parse(name)?;
    if repository.digest().is_some() {
        return Err(ApiError::bad_request(format!(
            "cannot push a digest reference: {name}"
        )));
    }
    let repo_name = repository.repository();
    let references = match tag.filter(|t| !t.is_empty()).or(repository.tag()) {
        Some(t) => vec![repository.with_tag(t)?.to_string()],
        // No tag: every tag of the repository (`docker push --all-tags`).
        None => tags_of_repository(engine, &repo_name)?,
    };
    let (auth_config_path, credentials) = registry_auth(headers);
    let opts = PushOptions {
        auth_config_path,
        credentials,
        hosts: engine.config.registry_hosts.clone(),
        ..PushOptions::default()
    };
    let head = line(&j!({
        "status": format!("The push refers to repository [{}]", repository.full_repository())
    }));
    let (tx, rx) = tokio::sync::mpsc::channel::<PushMsg>(256);
    let images = engine.images.clone();
    tokio::task::spawn_blocking(move || {
        if references.is_empty() {
            let _ = tx.blocking_send(PushMsg::Failed(no_such_tag(&repo_name, None)));
        }
        for reference in references {
            let progress_tx = tx.clone();
            let result = images.push(&reference, &opts, &|p| {
                let _ = progress_tx.blocking_send(PushMsg::Line(progress_line(&p)));
            });
            match result {
                Ok(pushed) => {
                    let _ = tx.blocking_send(PushMsg::Done(pushed));
                }
                Err(e) => {
                    let message = match e {
                        ImageError::NotFound(_) => no_such_tag(&repo_name, Some(&reference)),
                        other => other.to_string(),
                    };
                    let _ = tx.blocking_send(PushMsg::Failed(message));
                    return;
                }
            }
        }
    });
    let engine = engine.clone();
    let render = move |msg: PushMsg| -> String {
        match msg {
            PushMsg::Line(l) => l,
            PushMsg::Done(pushed) => {
                engine.events.emit(
                    "image",
                    "push",
                    &pushed.reference,
                    &[("name", pushed.reference.clone())],
                );
                done_lines(&pushed)
            }
            PushMsg::Failed(message) => {
                line(&j!({ "errorDetail": { "message": message }, "error": message }))
            }
        }
    };
    Ok(progress_stream(head, rx, render))
}

/// Every tag (familiar references) of the repository `repo` (familiar form).
fn tags_of_repository(engine: &AppState, repo: &str) -> ApiResult<Vec<String>> {
    let mut tags: Vec<String> = engine
        .images
        .list()?
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .filter(|t| Reference::parse(t).is_ok_and(|r| r.repository() == repo))
        .collect();
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// dockerd's messages for a push of something not in the store.
fn no_such_tag(repo: &str, reference: Option<&str>) -> String {
    match reference {
        Some(r) if r != format!("{repo}:latest") => format!("tag does not exist: {r}"),
        _ => format!("An image does not exist locally with the tag: {repo}"),
    }
}

/// The closing lines of one pushed tag: the digest summary and the `aux` record.
fn done_lines(pushed: &PushedImage) -> String {
    let mut out = line(&j!({
        "status": format!("{}: digest: {} size: {}", pushed.tag, pushed.digest, pushed.size)
    }));
    out.push_str(&line(&j!({
        "progressDetail": {},
        "aux": { "Tag": pushed.tag, "Digest": pushed.digest, "Size": pushed.size },
    })));
    out
}

/// One progress event as the JSON line `docker push` renders.
fn progress_line(p: &PushProgress) -> String {
    let mut v = j!({ "status": p.status.text(), "progressDetail": {}, "id": p.id });
    if let (Some(current), Some(total)) = (p.current, p.total) {
        v["progressDetail"] = j!({ "current": current, "total": total });
        v["progress"] = j!(progress_bar(current, total));
    }
    line(&v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmrun_images::PushStatus;

    #[test]
    fn lines_look_like_dockerd() {
        let pushing = progress_line(&PushProgress {
            id: "0123456789ab".into(),
            status: PushStatus::Pushing,
            current: Some(512),
            total: Some(1024),
        });
        let v: serde_json::Value = serde_json::from_str(&pushing).unwrap();
        assert_eq!(v["status"], "Pushing");
        assert_eq!(v["progressDetail"]["current"], 512);
        assert_eq!(v["id"], "0123456789ab");
        assert!(v["progress"]
            .as_str()
            .unwrap()
            .starts_with("[=========================>"));
        let mounted = progress_line(&PushProgress {
            id: "0123456789ab".into(),
            status: PushStatus::MountedFrom("test/a".into()),
            current: None,
            total: None,
        });
        assert_eq!(
            mounted,
            "{\"id\":\"0123456789ab\",\"progressDetail\":{},\"status\":\"Mounted from test/a\"}\n"
        );
        let done = done_lines(&PushedImage {
            reference: "r:5000/x:latest".into(),
            tag: "latest".into(),
            digest: "sha256:abc".into(),
            size: 527,
            image_id: "sha256:def".into(),
        });
        let mut lines = done.lines();
        assert_eq!(
            lines.next(),
            Some("{\"status\":\"latest: digest: sha256:abc size: 527\"}")
        );
        let aux: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(aux["aux"]["Size"], 527);
        assert_eq!(aux["aux"]["Tag"], "latest");
        assert_eq!(aux["progressDetail"], j!({}));
    }

    #[test]
    fn names_are_decoded_and_missing_tags_named() {
        assert_eq!(
            super::super::percent_decode("127.0.0.1%3A5000%2Fx"),
            "127.0.0.1:5000/x"
        );
        assert_eq!(super::super::percent_decode("a%zz%4"), "a%zz%4");
        assert_eq!(
            no_such_tag("r:5000/x", Some("r:5000/x:latest")),
            "An image does not exist locally with the tag: r:5000/x"
        );
        assert_eq!(
            no_such_tag("r:5000/x", Some("r:5000/x:v2")),
            "tag does not exist: r:5000/x:v2"
        );
    }
}
