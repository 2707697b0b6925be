//! The tray icon: the shared VM's state with start/stop, quick links to running
//! containers' published ports, "show dashboard" and "quit". The menu is rebuilt when
//! the daemon's `GET /events` stream reports a change (debounced), not by polling.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Wry};
use tokio::sync::mpsc;
use vmrun_ui_server::relay::{relay_stream, StreamEvent};
use vmrun_ui_server::DaemonClient;

const TRAY_ID: &str = "vmrun";

/// What the menu shows.
#[derive(Debug, Default, Clone, PartialEq)]
struct Snapshot {
    daemon_up: bool,
    vm_state: Option<String>,
    links: Vec<(String, String)>,
}

async fn get_json(client: &DaemonClient, path: &str) -> Option<serde_json::Value> {
    let r = client.request("GET", path, &[], Bytes::new()).await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    let body = r.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

async fn snapshot(client: &DaemonClient) -> Snapshot {
    let Some(containers) = get_json(client, "/containers/json").await else {
        return Snapshot::default();
    };
    let vm_state = get_json(client, "/vmrun/vm")
        .await
        .and_then(|v| v["State"].as_str().map(str::to_string));
    let mut links = Vec::new();
    for c in containers.as_array().into_iter().flatten() {
        let name = c["Names"][0]
            .as_str()
            .unwrap_or("?")
            .trim_start_matches('/');
        let mut seen = Vec::new();
        for p in c["Ports"].as_array().into_iter().flatten() {
            let (Some(public), Some("tcp")) = (p["PublicPort"].as_u64(), p["Type"].as_str()) else {
                continue;
            };
            if seen.contains(&public) {
                continue;
            }
            seen.push(public);
            links.push((
                format!("{name} → localhost:{public}"),
                format!("http://localhost:{public}"),
            ));
        }
    }
    Snapshot {
        daemon_up: true,
        vm_state,
        links,
    }
}

fn build_menu(app: &AppHandle, s: &Snapshot) -> tauri::Result<Menu<Wry>> {
    let menu = Menu::new(app)?;
    let status = if !s.daemon_up {
        "Daemon: not running".to_string()
    } else {
        match &s.vm_state {
            Some(state) => format!("VM: {state}"),
            None => "Daemon: running (no VM endpoints)".to_string(),
        }
    };
    menu.append(&MenuItem::with_id(
        app,
        "status",
        status,
        false,
        None::<&str>,
    )?)?;
    if let Some(state) = &s.vm_state {
        let running = state == "running";
        menu.append(&MenuItem::with_id(
            app,
            "vm-start",
            "Start VM",
            !running,
            None::<&str>,
        )?)?;
        menu.append(&MenuItem::with_id(
            app,
            "vm-stop",
            "Stop VM",
            running,
            None::<&str>,
        )?)?;
    }
    if !s.links.is_empty() {
        menu.append(&PredefinedMenuItem::separator(app)?)?;
        for (label, url) in &s.links {
            menu.append(&MenuItem::with_id(
                app,
                format!("open:{url}"),
                label,
                true,
                None::<&str>,
            )?)?;
        }
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(
        app,
        "show",
        "Show dashboard",
        true,
        None::<&str>,
    )?)?;
    menu.append(&MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?)?;
    Ok(menu)
}

fn open_url(url: &str) {
    let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
        ("open", vec![url])
    } else if cfg!(windows) {
        ("cmd", vec!["/C", "start", "", url])
    } else {
        ("xdg-open", vec![url])
    };
    if let Err(e) = std::process::Command::new(program).args(args).spawn() {
        eprintln!("vmrun-desktop: cannot open {url}: {e}");
    }
}

/// Creates the tray icon and keeps its menu current.
pub fn install(app: &AppHandle, client: DaemonClient) -> tauri::Result<()> {
    let menu = build_menu(app, &Snapshot::default())?;
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .menu(&menu)
        .tooltip("vmrun")
        .on_menu_event({
            let client = client.clone();
            move |app, event| {
                let id = event.id().as_ref().to_string();
                let client = client.clone();
                match id.as_str() {
                    "quit" => app.exit(0),
                    "show" => {
                        if let Some(w) = app.get_webview_window("main") {
                            let _ = w.show();
                            let _ = w.set_focus();
                        }
                    }
                    "vm-start" | "vm-stop" => {
                        let path = if id == "vm-start" {
                            "/vmrun/vm/start"
                        } else {
                            "/vmrun/vm/stop"
                        };
                        tauri::async_runtime::spawn(async move {
                            let _ = client.request("POST", path, &[], Bytes::new()).await;
                        });
                    }
                    other => {
                        if let Some(url) = other.strip_prefix("open:") {
                            open_url(url);
                        }
                    }
                }
            }
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    let tray = builder.build(app)?;
    let app = app.clone();
    tauri::async_runtime::spawn(async move { keep_current(app, tray, client).await });
    Ok(())
}

/// Rebuilds the menu now, then after each burst of daemon events; reconnects every 5 s
/// while the daemon is away.
async fn keep_current(app: AppHandle, tray: TrayIcon<Wry>, client: DaemonClient) {
    let mut shown: Option<Snapshot> = None;
    loop {
        let (tx, mut rx) = mpsc::channel(64);
        let events_client = client.clone();
        let events = tauri::async_runtime::spawn(async move {
            relay_stream(&events_client, "GET", "/events", None, tx).await;
        });
        loop {
            let s = snapshot(&client).await;
            if shown.as_ref() != Some(&s) {
                if let Ok(menu) = build_menu(&app, &s) {
                    let _ = tray.set_menu(Some(menu));
                }
                let tip = if s.daemon_up {
                    format!("vmrun: VM {}", s.vm_state.as_deref().unwrap_or("n/a"))
                } else {
                    "vmrun: daemon not running".into()
                };
                let _ = tray.set_tooltip(Some(tip));
                shown = Some(s);
            }
            // Wait for the next event, then let the burst settle.
            match rx.recv().await {
                Some(StreamEvent::End(_)) | None => break,
                Some(_) => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    while let Ok(ev) = rx.try_recv() {
                        if matches!(ev, StreamEvent::End(_)) {
                            break;
                        }
                    }
                }
            }
        }
        events.abort();
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
