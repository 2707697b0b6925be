//! vmrun-desktop: the dashboard in a Tauri 2 window. The web front end (ui/src) talks to
//! this side through Tauri commands and channels, and this side to the daemon's socket
//! through vmrun-ui-server's client and relays, the same ones the browser adapter uses:
//! the app is a client of the Docker-compatible API only. The tray icon (tray.rs) shows
//! the VM's state with start/stop and links to running containers' published ports.
//!
//! Environment: `VMRUN_HOST` (the daemon, default unix:///run/vmrun/docker.sock);
//! `VMRUN_DESKTOP_READY_FILE` (test hook: when the containers view has rendered with
//! data, `{"view", "ms" since start, "rows": container names}` is written there);
//! `VMRUN_DESKTOP_TRAY_FILE` (test hook: the tray menu as JSON, see tray.rs);
//! `VMRUN_DESKTOP_NO_TRAY`.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod tray;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;
use tokio::sync::mpsc;
use vmrun_ui_server::relay::{relay_exec, relay_stream, StreamEvent};
use vmrun_ui_server::DaemonClient;

const DEFAULT_HOST: &str = "unix:///run/vmrun/docker.sock";

/// What the commands share.
pub struct AppState {
    client: DaemonClient,
    host: String,
    streams: Mutex<HashMap<u32, Stream>>,
    started: Instant,
    ready_reported: Mutex<bool>,
}

struct Stream {
    task: tauri::async_runtime::JoinHandle<()>,
    stdin: Option<mpsc::Sender<Bytes>>,
}

/// A plain request's answer, as the front end's transport expects it.
#[derive(Debug, Serialize)]
struct ApiResult {
    status: u16,
    text: String,
}

/// One message of a stream's channel (`kind`: status, data, end).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum StreamMsg {
    Status { status: u16 },
    Data { data: Vec<u8> },
    End { error: Option<String> },
}

impl From<StreamEvent> for StreamMsg {
    fn from(ev: StreamEvent) -> Self {
        match ev {
            StreamEvent::Status(status) => StreamMsg::Status { status },
            StreamEvent::Data(data) => StreamMsg::Data {
                data: data.to_vec(),
            },
            StreamEvent::End(error) => StreamMsg::End { error },
        }
    }
}

fn json_error(status: u16, message: &str, reason: Option<&str>) -> ApiResult {
    let body = match reason {
        Some(r) => serde_json::json!({ "message": message, "reason": r }),
        None => serde_json::json!({ "message": message }),
    };
    ApiResult {
        status,
        text: body.to_string(),
    }
}

/// The socket path of a `unix://` host.
fn socket_of(host: &str) -> PathBuf {
    PathBuf::from(host.strip_prefix("unix://").unwrap_or(host))
}

#[tauri::command]
async fn docker_request(
    state: State<'_, AppState>,
    method: String,
    path: String,
    body: Option<String>,
) -> Result<ApiResult, String> {
    let headers = match body {
        Some(_) => vec![("content-type".to_string(), "application/json".to_string())],
        None => Vec::new(),
    };
    let body = Bytes::from(body.unwrap_or_default());
    match state.client.request(&method, &path, &headers, body).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok(ApiResult {
                status,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            })
        }
        Err(e) if e.is_down() => Ok(json_error(502, &e.to_string(), Some("daemon-down"))),
        Err(e) => Ok(json_error(502, &e.to_string(), None)),
    }
}

/// Forwards a relay's events to the front end's channel.
fn spawn_relay(
    state: &AppState,
    id: u32,
    relay: impl std::future::Future<Output = ()> + Send + 'static,
    mut rx: mpsc::Receiver<StreamEvent>,
    channel: Channel<StreamMsg>,
    stdin: Option<mpsc::Sender<Bytes>>,
) {
    let task = tauri::async_runtime::spawn(async move {
        let forward = async move {
            while let Some(ev) = rx.recv().await {
                if channel.send(ev.into()).is_err() {
                    break;
                }
            }
        };
        tokio::join!(relay, forward);
    });
    if let Ok(mut streams) = state.streams.lock() {
        streams.retain(|_, s| !s.task.inner().is_finished());
        if let Some(old) = streams.insert(id, Stream { task, stdin }) {
            old.task.abort();
        }
    }
}

#[tauri::command]
fn docker_stream(
    state: State<'_, AppState>,
    id: u32,
    method: String,
    path: String,
    body: Option<String>,
    on_event: Channel<StreamMsg>,
) {
    let (tx, rx) = mpsc::channel(64);
    let client = state.client.clone();
    let relay = async move { relay_stream(&client, &method, &path, body, tx).await };
    spawn_relay(&state, id, relay, rx, on_event, None);
}

#[tauri::command]
fn docker_exec(state: State<'_, AppState>, id: u32, exec_id: String, on_event: Channel<StreamMsg>) {
    let (tx, rx) = mpsc::channel(64);
    let (stdin_tx, stdin_rx) = mpsc::channel(64);
    let client = state.client.clone();
    let relay = async move { relay_exec(&client, &exec_id, stdin_rx, tx).await };
    spawn_relay(&state, id, relay, rx, on_event, Some(stdin_tx));
}

#[tauri::command]
async fn stream_send(state: State<'_, AppState>, id: u32, data: Vec<u8>) -> Result<(), String> {
    let stdin = state
        .streams
        .lock()
        .map_err(|_| "stream table poisoned".to_string())?
        .get(&id)
        .and_then(|s| s.stdin.clone());
    if let Some(stdin) = stdin {
        let _ = stdin.send(Bytes::from(data)).await;
    }
    Ok(())
}

#[tauri::command]
fn stream_close(state: State<'_, AppState>, id: u32) {
    if let Ok(mut streams) = state.streams.lock() {
        if let Some(s) = streams.remove(&id) {
            s.task.abort();
        }
    }
}

/// The "start daemon" action: `vmrun -H HOST info`, which starts the daemon exactly as
/// every CLI command does when it finds none.
#[tauri::command]
async fn start_daemon(state: State<'_, AppState>) -> Result<ApiResult, String> {
    let vmrun = find_vmrun();
    let run = tokio::process::Command::new(&vmrun)
        .args(["-H", &state.host, "info"])
        .stdin(std::process::Stdio::null())
        .output();
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Err(_) => Ok(json_error(
            504,
            "the daemon did not start within 60 s",
            None,
        )),
        Ok(Err(e)) => Ok(json_error(
            500,
            &format!("cannot run {}: {e}", vmrun.display()),
            None,
        )),
        Ok(Ok(out)) if out.status.success() => Ok(ApiResult {
            status: 200,
            text: "{}".into(),
        }),
        Ok(Ok(out)) => Ok(json_error(
            500,
            String::from_utf8_lossy(&out.stderr).trim(),
            None,
        )),
    }
}

fn find_vmrun() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("vmrun")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("vmrun"))
}

/// Test hook: the front end says which view rendered with data.
#[tauri::command]
fn ui_ready(state: State<'_, AppState>, view: String, rows: Vec<String>) {
    let Ok(mut reported) = state.ready_reported.lock() else {
        return;
    };
    if *reported {
        return;
    }
    *reported = true;
    let ms = state.started.elapsed().as_millis();
    eprintln!("vmrun-desktop: {view} view rendered {ms} ms after start");
    if let Some(path) = std::env::var_os("VMRUN_DESKTOP_READY_FILE") {
        let line = serde_json::json!({ "view": view, "ms": ms, "rows": rows }).to_string();
        if let Err(e) = std::fs::write(&path, line) {
            eprintln!(
                "vmrun-desktop: cannot write {}: {e}",
                PathBuf::from(path).display()
            );
        }
    }
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let host = std::env::var("VMRUN_HOST").unwrap_or_else(|_| DEFAULT_HOST.to_string());
    let client = DaemonClient::new(socket_of(&host));
    let state = AppState {
        client: client.clone(),
        host: host.clone(),
        streams: Mutex::new(HashMap::new()),
        started,
        ready_reported: Mutex::new(false),
    };
    tauri::Builder::default()
        .manage(state)
        .invoke_handler(tauri::generate_handler![
            docker_request,
            docker_stream,
            docker_exec,
            stream_send,
            stream_close,
            start_daemon,
            ui_ready
        ])
        .setup(move |app| {
            if std::env::var_os("VMRUN_DESKTOP_NO_TRAY").is_none() {
                if let Err(e) = tray::install(app.handle(), client.clone()) {
                    eprintln!("vmrun-desktop: no tray icon: {e}");
                }
            }
            Ok(())
        })
        .run(tauri::generate_context!())?;
    Ok(())
}
