//! System routes: ping, version, info, events, disk usage, registry login.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json as j;

use super::{json, AppState, API_VERSION, MIN_API_VERSION};
use crate::error::{ApiError, ApiResult};
use crate::state::Status;

/// `GET|HEAD /_ping`.
pub async fn ping() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            // The classic builder (`POST /build`): clients pick it without guessing.
            (header::HeaderName::from_static("builder-version"), "1"),
        ],
        "OK",
    )
        .into_response()
}

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `GET /version`.
pub async fn version() -> Response {
    let v = env!("CARGO_PKG_VERSION");
    json(&j!({
        "Platform": { "Name": "vmrun" },
        "Components": [{ "Name": "Engine", "Version": v, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
            "Arch": "amd64", "KernelVersion": kernel_version(), "Experimental": "false",
            "GoVersion": "n/a (Rust)", "GitCommit": "", "BuildTime": "" } }],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "n/a (Rust)",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": kernel_version(),
        "Experimental": false,
        "BuildTime": "",
    }))
}

/// `RegistryConfig` of `GET /info`, shaped like dockerd's: loopback and the CIDR
/// entries of `--insecure-registry` in `InsecureRegistryCIDRs`, named insecure
/// registries and `docker.io` (with its mirrors) in `IndexConfigs`.
fn registry_config(hosts: &vmrun_images::RegistryHosts) -> serde_json::Value {
    let mirrors = vmrun_images::registry::mirrors::mirror_urls(&hosts.mirrors);
    let mut cidrs = vec!["::1/128".to_owned(), "127.0.0.0/8".to_owned()];
    cidrs.extend(hosts.insecure_cidrs());
    let mut index = serde_json::Map::new();
    for name in hosts.insecure_names() {
        index.insert(
            name.clone(),
            j!({ "Name": name, "Mirrors": [], "Secure": false, "Official": false }),
        );
    }
    index.insert(
        "docker.io".into(),
        j!({ "Name": "docker.io", "Mirrors": mirrors, "Secure": true, "Official": true }),
    );
    j!({
        "AllowNondistributableArtifactsCIDRs": [],
        "AllowNondistributableArtifactsHostnames": [],
        "InsecureRegistryCIDRs": cidrs,
        "IndexConfigs": index,
        "Mirrors": mirrors,
    })
}

/// `GET /info`.
pub async fn info(State(engine): State<AppState>) -> ApiResult<Response> {
    let all = engine.store.list();
    let count = |s: Status| all.iter().filter(|c| c.state.status == s).count();
    let images = engine.images.list().map(|i| i.len()).unwrap_or(0);
    let cgroup_version = match vmrun_cgroups::detect() {
        Ok(vmrun_cgroups::CgroupVersion::V2) => "2",
        _ => "1",
    };
    let mem = nix::sys::sysinfo::sysinfo()
        .map(|i| i.ram_total())
        .unwrap_or(0);
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into());
    Ok(json(&j!({
        "ID": "vmrun",
        "Containers": all.len(),
        "ContainersRunning": all.iter().filter(|c| c.is_running() && !c.state.paused).count(),
        "ContainersPaused": all.iter().filter(|c| c.state.paused).count(),
        "ContainersStopped": count(Status::Exited) + count(Status::Created),
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "native"]],
        "Plugins": { "Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"] },
        "MemoryLimit": true, "SwapLimit": true, "CpuCfsPeriod": true, "CpuCfsQuota": true,
        "CPUShares": true, "PidsLimit": true, "OomKillDisable": false, "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0, "NGoroutines": 0,
        "SystemTime": vmrun_shim::now_rfc3339(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": kernel_version(),
        "OperatingSystem": os,
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config(&engine.config.registry_hosts),
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem,
        "DockerRootDir": engine.config.data_root.display().to_string(),
        "Name": host,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": { "vmrun": { "path": "vmrun-shim" } },
        "DefaultRuntime": "vmrun",
        "VmBackend": engine.vm.info(),
        "VmrunMode": match engine.config.mode {
            crate::config::DaemonMode::Native => "native",
            crate::config::DaemonMode::Vm => "vm",
        },
        "Swarm": { "LocalNodeState": "inactive", "ControlAvailable": false, "NodeID": "", "NodeAddr": "" },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
        "Warnings": [],
    })))
}

/// `GET /events`' parameters.
#[derive(serde::Deserialize)]
pub struct EventsQuery {
    filters: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// `GET /events`: a stream of JSON events, filtered like docker's `filters`.
pub async fn events(
    State(engine): State<AppState>,
    super::query::DockerQuery(q): super::query::DockerQuery<EventsQuery>,
) -> ApiResult<Response> {
    let filters = super::parse_filters(q.filters.as_deref())?;
    let until = q.until.and_then(|u| u.parse::<f64>().ok());
    let since = q.since.and_then(|u| u.parse::<f64>().ok());
    let (past, mut rx) = match since {
        Some(s) => engine.events.replay((s * 1e9) as i64),
        None => (Vec::new(), engine.events.subscribe()),
    };
    let until_nanos = until.map(|u| (u * 1e9) as i64);
    let (tx, out) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let until_passed = until_nanos.is_some_and(|u| u <= now);
        // A future `until` ends the stream then; a past one ends it after the replay.
        let deadline = until_nanos
            .filter(|u| *u > now)
            .map(|u| std::time::Duration::from_nanos((u - now) as u64));
        let mut past = past.into_iter();
        let run = async {
            loop {
                let ev = match past.next() {
                    Some(ev) => ev,
                    None if until_passed => return,
                    None => match rx.recv().await {
                        Ok(ev) => ev,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    },
                };
                if until_nanos.is_some_and(|u| ev.time_nano > u) {
                    return;
                }
                let name = ev.attr("name").unwrap_or("").to_string();
                let keep = filters.iter().all(|(k, vals)| {
                    vals.iter().any(|v| match k.as_str() {
                        "type" => ev.typ == *v,
                        "event" => ev.action == *v,
                        "container" => {
                            ev.typ == "container"
                                && (ev.actor.id.starts_with(v.as_str()) || name == *v)
                        }
                        "image" => ev.attr("image") == Some(v.as_str()),
                        _ => true,
                    })
                });
                if !keep {
                    continue;
                }
                let mut line = serde_json::to_vec(&ev).unwrap_or_default();
                line.push(b'\n');
                if tx.send(Ok(Bytes::from(line))).await.is_err() {
                    return;
                }
            }
        };
        match deadline {
            Some(d) => {
                let _ = tokio::time::timeout(d, run).await;
            }
            None => run.await,
        }
    });
    let body = futures::stream::unfold(
        out,
        |mut rx| async move { rx.recv().await.map(|i| (i, rx)) },
    );
    Ok(Response::builder()
        .header("Content-Type", "application/json")
        .body(Body::from_stream(body))
        .unwrap_or_default())
}

/// The body of `POST /auth` (docker's `AuthConfig`).
#[derive(serde::Deserialize)]
struct AuthRequest {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    serveraddress: String,
}

/// `POST /auth`: checks credentials against the registry (`GET /v2/` with
/// them). `{"Status":"Login Succeeded"}`, or 401 with the registry's refusal.
/// `$VMRUN_INSECURE_REGISTRIES` (comma-separated) names registries reached
/// over plain HTTP besides loopback ones.
pub async fn auth(State(engine): State<AppState>, body: Bytes) -> ApiResult<Response> {
    use vmrun_images::registry::{check_login, Credentials};
    use vmrun_images::ImageError;

    let request: AuthRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid auth body: {e}")))?;
    if request.username.is_empty() || request.password.is_empty() {
        return Err(ApiError::bad_request("username and password are required"));
    }
    let hosts = engine.config.registry_hosts.clone();
    let credentials = Credentials {
        username: request.username,
        password: request.password,
    };
    let server = request.serveraddress;
    let result = tokio::task::spawn_blocking(move || check_login(&server, &credentials, &hosts))
        .await
        .map_err(|e| ApiError::internal(format!("login task failed: {e}")))?;
    match result {
        Ok(()) => Ok(json(
            &j!({ "Status": "Login Succeeded", "IdentityToken": "" }),
        )),
        Err(e @ ImageError::Unauthorized { .. }) => Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            format!("login attempt failed: {e}"),
        )),
        Err(e) => Err(e.into()),
    }
}
