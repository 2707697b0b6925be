//! Image routes. Image names contain slashes, so `/images/...` is dispatched by hand.

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::{ImageDeleteResponseItem, ImageSummary};
use serde_json::json as j;
use vmrun_images::{Image, RemovedItem};

use super::query::{docker_bool, non_empty, DockerQuery};
use super::{json, AppState};
use crate::error::{ApiError, ApiResult};

fn created_unix(img: &Image) -> i64 {
    img.created
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

pub(super) fn summary(img: &Image, containers: i64) -> ImageSummary {
    let labels = img
        .config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default();
    ImageSummary {
        id: img.id.clone(),
        parent_id: img.parent.clone().unwrap_or_default(),
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

pub(super) fn containers_using(engine: &crate::engine::Engine, image_id: &str) -> Vec<String> {
    engine
        .store
        .list()
        .into_iter()
        .filter(|c| c.image_id == image_id)
        .map(|c| c.id)
        .collect()
}

/// The parameters of the `/images/...` routes (each reads its own).
#[derive(Default, serde::Deserialize)]
pub(super) struct ImagesQuery {
    #[serde(rename = "fromSrc")]
    pub from_src: Option<String>,
    #[serde(rename = "fromImage", default, deserialize_with = "non_empty")]
    pub from_image: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub repo: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub tag: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub platform: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub format: Option<String>,
    pub filters: Option<String>,
    #[serde(default, deserialize_with = "docker_bool")]
    pub all: bool,
    #[serde(default, deserialize_with = "docker_bool")]
    pub force: bool,
}

/// `GET /images/json`. Without `all`, untagged images that other images were built
/// from (a build's intermediate steps) are left out, as dockerd does.
pub async fn list(
    State(engine): State<AppState>,
    DockerQuery(q): DockerQuery<ImagesQuery>,
) -> ApiResult<Response> {
    let images = engine.images.list()?;
    let parents: std::collections::HashSet<&str> =
        images.iter().filter_map(|i| i.parent.as_deref()).collect();
    let all = q.all;
    let out: Vec<ImageSummary> = images
        .iter()
        .filter(|i| all || !i.repo_tags.is_empty() || !parents.contains(i.id.as_str()))
        .map(|i| summary(i, containers_using(&engine, &i.id).len() as i64))
        .collect();
    Ok(json(&out))
}

/// `POST /images/load`: a docker-archive or OCI layout tar in the body, spooled to a
/// temporary file (archives can be large) and then loaded.
pub async fn load(State(engine): State<AppState>, body: Body) -> ApiResult<Response> {
    let spool = spool_body(&engine, body, "the archive").await?;
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
    let path = super::percent_decode(req.uri().path());
    let q: ImagesQuery = match Query::try_from_uri(req.uri()) {
        Ok(Query(q)) => q,
        Err(e) => {
            return ApiError::bad_request(format!("invalid query: {}", e.body_text()))
                .into_response()
        }
    };
    let result = match path.strip_prefix("/images/") {
        Some("create") if method == Method::POST && q.from_src.is_some() => {
            super::import::import(&engine, &q, req).await
        }
        Some("create") if method == Method::POST => {
            super::pull::create(&engine, &q, req.headers()).await
        }
        Some("get") if method == Method::GET => save(&engine, query_values(req.uri(), "names"), &q),
        Some("get") => Ok(method_not_allowed("GET")),
        Some("prune") if method != Method::POST => Ok(method_not_allowed("POST")),
        Some("prune") if method == Method::POST => {
            let pruned = prune(&engine, &q).await;
            prune_vm_layers(&engine);
            pruned
        }
        Some(rest) => match (method, rest) {
            (Method::GET, r) if r.ends_with("/json") => inspect(&engine, &r[..r.len() - 5]),
            (Method::GET, r) if r.ends_with("/history") => {
                super::image_history::history(&engine, &r[..r.len() - 8])
            }
            (Method::GET, r) if r.ends_with("/get") => {
                save(&engine, vec![r[..r.len() - 4].to_owned()], &q)
            }
            (Method::POST, r) if r.ends_with("/tag") => tag(&engine, &r[..r.len() - 4], &q),
            (Method::DELETE, name) => {
                let removed = remove(&engine, name, &q);
                prune_vm_layers(&engine);
                removed
            }
            _ => Err(not_found(&path)),
        },
        None => Err(not_found(&path)),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A 405 for a path that exists with other methods (`allow`), as the routed paths give.
fn method_not_allowed(allow: &'static str) -> Response {
    let mut res =
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response();
    res.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static(allow),
    );
    res
}

fn not_found(path: &str) -> ApiError {
    ApiError::not_found(format!("page not found: {path}"))
}

/// Where a pull or push finds credentials: the `X-Registry-Auth` header's, else
/// the file `$VMRUN_DOCKER_CONFIG` or `$HOME/.docker/config.json`.
pub(super) fn registry_auth(
    headers: &axum::http::HeaderMap,
) -> (
    Option<std::path::PathBuf>,
    Option<vmrun_images::registry::Credentials>,
) {
    use vmrun_images::registry::auth::credentials_from_registry_auth_header;
    let auth_config_path = std::env::var_os("VMRUN_DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".docker/config.json"))
        });
    let credentials = headers
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .and_then(credentials_from_registry_auth_header);
    (auth_config_path, credentials)
}

/// A streamed `application/json` answer of progress lines (pull, push): `head`
/// first, then `render` of every message from `rx` until its senders are gone.
pub(super) fn progress_stream<M: Send + 'static>(
    head: String,
    rx: tokio::sync::mpsc::Receiver<M>,
    render: impl Fn(M) -> String + Send + 'static,
) -> Response {
    let stream = futures::stream::unfold(
        (Some(head), rx, render),
        |(first, mut rx, render)| async move {
            if let Some(chunk) = first {
                return Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)),
                    (None, rx, render),
                ));
            }
            let msg = rx.recv().await?;
            Some((Ok(bytes::Bytes::from(render(msg))), (None, rx, render)))
        },
    );
    Response::builder()
        .header("Content-Type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

pub(super) fn line(value: &serde_json::Value) -> String {
    format!("{value}\n")
}

/// One progress event as the JSON line `docker pull` renders.
pub(super) fn progress_line(p: &vmrun_images::PullProgress) -> String {
    let mut v = j!({ "status": p.status.as_str(), "progressDetail": {}, "id": p.id });
    if let (Some(current), Some(total)) = (p.current, p.total) {
        v["progressDetail"] = j!({ "current": current, "total": total });
        v["progress"] = j!(progress_bar(current, total));
    }
    line(&v)
}

/// docker's `[=====>      ]  1.2MB/2.4MB`.
pub(super) fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    let mut bar = "=".repeat(filled as usize);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat((WIDTH - filled - 1) as usize));
    }
    format!("[{bar}] {:>8}/{}", human_size(current), human_size(total))
}

/// Decimal sizes with 3 significant digits, as docker's `units.HumanSize`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
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
        "Parent": img.parent.clone().unwrap_or_default(),
        "Comment": "",
        "Created": img.created.clone().unwrap_or_default(),
        "DockerVersion": "",
        "Author": img.config.author().clone().unwrap_or_default(),
        "Config": with_docker_fields(image_config(&cfg), engine.images.raw_config(&img.id).ok()),
        "Architecture": img.architecture,
        "Os": img.os,
        "Size": img.size,
        "GraphDriver": { "Name": "overlay2", "Data": layer_dirs(&img.layer_dirs) },
        "RootFS": { "Type": "layers", "Layers": diff_ids },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    })))
}

/// `Config` of an image inspect, shaped like dockerd's container config: every
/// field dockerd always sends, and the `omitempty` ones only when set.
fn image_config(cfg: &oci_spec::image::Config) -> serde_json::Value {
    let mut config = j!({
        "Hostname": "", "Domainname": "", "User": cfg.user().clone().unwrap_or_default(),
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": cfg.env(), "Cmd": cfg.cmd(), "Image": "",
        "Volumes": cfg.volumes().as_ref().map(|v| v.iter().map(|k| (k.clone(), j!({}))).collect::<serde_json::Map<_, _>>()),
        "WorkingDir": cfg.working_dir().clone().unwrap_or_default(),
        "Entrypoint": cfg.entrypoint(), "OnBuild": null, "Labels": cfg.labels(),
    });
    if let Some(ports) = cfg.exposed_ports() {
        config["ExposedPorts"] = ports
            .iter()
            .map(|k| (k.clone(), j!({})))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    if let Some(signal) = cfg.stop_signal() {
        config["StopSignal"] = j!(signal);
    }
    config
}

/// Adds the config fields docker keeps beyond OCI's (`Healthcheck`, `OnBuild`, `Shell`)
/// from the stored config document.
fn with_docker_fields(
    mut config: serde_json::Value,
    raw: Option<serde_json::Value>,
) -> serde_json::Value {
    let Some(raw) = raw else { return config };
    for key in ["Healthcheck", "OnBuild", "Shell"] {
        if let Some(v) = raw["config"].get(key).filter(|v| !v.is_null()) {
            config[key] = v.clone();
        }
    }
    config
}

/// `GraphDriver.Data`: the top layer's directory as `UpperDir`, the ones below
/// as `LowerDir` (top-most first, `:`-separated), as overlayfs stacks them.
fn layer_dirs(dirs: &[std::path::PathBuf]) -> serde_json::Value {
    let Some((top, below)) = dirs.split_last() else {
        return serde_json::Value::Null;
    };
    let mut data = j!({ "UpperDir": top.display().to_string() });
    if !below.is_empty() {
        let lower: Vec<String> = below
            .iter()
            .rev()
            .map(|d| d.display().to_string())
            .collect();
        data["LowerDir"] = j!(lower.join(":"));
    }
    data
}

/// After images went: the VMs' copies of layers nobody holds go too, in the background.
fn prune_vm_layers(engine: &AppState) {
    let engine = engine.clone();
    tokio::spawn(async move { engine.prune_vm_layers().await });
}

fn tag(engine: &crate::engine::Engine, name: &str, q: &ImagesQuery) -> ApiResult<Response> {
    let repo = q
        .repo
        .as_ref()
        .ok_or_else(|| ApiError::bad_request("repository name is required"))?;
    let target = match &q.tag {
        Some(t) => format!("{repo}:{t}"),
        None => repo.clone(),
    };
    engine.images.tag(name, &target)?;
    let id = engine.images.resolve(&target)?.id;
    engine.events.emit("image", "tag", &id, &[("name", target)]);
    Ok(StatusCode::CREATED.into_response())
}

fn remove(engine: &crate::engine::Engine, name: &str, q: &ImagesQuery) -> ApiResult<Response> {
    let force = q.force;
    let img = engine.images.resolve(name).map_err(|e| match e {
        vmrun_images::ImageError::NotFound(_) => {
            ApiError::not_found(format!("No such image: {name}"))
        }
        other => other.into(),
    })?;
    let removed = engine
        .images
        .remove(name, force, &engine.container_uses())?;
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

/// `POST /images/prune?filters=…`: removes unused images; `dangling=false` (`-a`) takes
/// every image no container uses, `label`/`label!` narrow the choice.
async fn prune(engine: &AppState, q: &ImagesQuery) -> ApiResult<Response> {
    let filters = super::parse_filters(q.filters.as_deref())?;
    let mut opts = vmrun_images::PruneOptions::default();
    for (key, values) in filters {
        match key.as_str() {
            "dangling" => {
                opts.all = match values.first().map(String::as_str) {
                    None | Some("true" | "1") => false,
                    Some("false" | "0") => true,
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "invalid filter 'dangling={other}'"
                        )))
                    }
                }
            }
            "label" => opts.labels = values,
            "label!" => opts.labels_not = values,
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter '{other}' (image prune supports dangling, label, label!)"
                )))
            }
        }
    }
    let engine = engine.clone();
    let (engine, images_before, report) = tokio::task::spawn_blocking(move || {
        let before: std::collections::HashSet<String> = engine
            .images
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.id)
            .collect();
        let report = engine.images.prune(&opts, &engine.container_uses());
        (engine, before, report)
    })
    .await
    .map_err(|e| ApiError::internal(format!("prune task failed: {e}")))?;
    let report = report?;
    let mut deleted = Vec::new();
    for item in &report.deleted {
        match item {
            RemovedItem::Untagged(t) => deleted.push(serde_json::json!({ "Untagged": t })),
            RemovedItem::Deleted(d) => {
                if images_before.contains(d) {
                    engine.events.emit("image", "delete", d, &[]);
                }
                deleted.push(serde_json::json!({ "Deleted": d }));
            }
        }
    }
    engine.events.emit(
        "image",
        "prune",
        "",
        &[("reclaimed", report.space_reclaimed.to_string())],
    );
    Ok(json(&serde_json::json!({
        "ImagesDeleted": deleted,
        "SpaceReclaimed": report.space_reclaimed,
    })))
}

/// The repeated `names` query parameter of `GET /images/get`.
/// Writes a request body (an archive, a tarball) to a temporary file under the
/// data root, so a blocking reader can take it; `what` names it in errors.
pub(super) async fn spool_body(
    engine: &crate::engine::Engine,
    body: Body,
    what: &str,
) -> ApiResult<tempfile::NamedTempFile> {
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
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading {what}: {e}")))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format!("spooling {what}: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::internal(format!("spooling {what}: {e}")))?;
    Ok(spool)
}

/// The name for an image made here (`import`, `commit`): `repo[:tag]` from the
/// `repo` and `tag` query parameters, none when neither is given.
pub(super) fn new_image_reference(
    repo: Option<&str>,
    tag: Option<&str>,
) -> ApiResult<Option<String>> {
    match (repo, tag) {
        (Some(repo), Some(tag)) => Ok(Some(format!("{repo}:{tag}"))),
        (Some(repo), None) => Ok(Some(repo.to_string())),
        (None, Some(_)) => Err(ApiError::bad_request("a tag needs a repository (repo=…)")),
        (None, None) => Ok(None),
    }
}

/// Every value of the repeated query parameter `key` (`names`, `changes`).
pub(super) fn query_values(uri: &axum::http::Uri, key: &str) -> Vec<String> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| {
            pairs
                .into_iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v)
                .collect()
        })
        .unwrap_or_default()
}

/// A blocking writer feeding a response body through a channel.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /images/{name}/get` and `GET /images/get?names=a&names=b`: streams a
/// docker-archive (`application/x-tar`). vmrun extension: `format=oci` streams
/// an OCI image layout tar instead. Unknown names are a 404 before anything
/// is streamed; a failure mid-stream aborts the body (the client sees a
/// truncated transfer, as with docker).
fn save(
    engine: &crate::engine::Engine,
    names: Vec<String>,
    q: &ImagesQuery,
) -> ApiResult<Response> {
    let format = match q.format.as_deref() {
        None | Some("docker") | Some("docker-archive") => vmrun_images::SaveFormat::DockerArchive,
        Some("oci") | Some("oci-archive") => vmrun_images::SaveFormat::OciLayout,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown save format {other:?} (docker or oci)"
            )))
        }
    };
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    for name in &names {
        engine.images.resolve(name).map_err(|e| match e {
            vmrun_images::ImageError::NotFound(_) => {
                ApiError::not_found(format!("No such image: {name}"))
            }
            other => other.into(),
        })?;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let images = engine.images.clone();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let writer =
            std::io::BufWriter::with_capacity(SAVE_CHUNK, ChannelWriter { tx: tx.clone() });
        if let Err(e) = images.save(&refs, format, writer) {
            tracing::warn!(error = %e, "image save failed");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((chunk, rx))
    });
    Ok(Response::builder()
        .header("Content-Type", "application/x-tar")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// Bytes per body chunk of a save stream.
const SAVE_CHUNK: usize = 256 * 1024;
