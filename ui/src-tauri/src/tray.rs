//! The tray icon: the shared VM's state with start/stop, quick links to running
//! containers' published ports, "show dashboard" and "quit". The menu's content comes
//! from `vmrun_ui_server::tray` (the daemon's API → menu entries); it is rebuilt when the
//! daemon's `GET /events` stream reports a change (debounced) and after the tray's own
//! VM actions (the daemon sends no event for those), not by polling.
//!
//! Test hook: with `VMRUN_DESKTOP_TRAY_FILE` set, every menu handed to the tray is also
//! written there as JSON (`{"tooltip", "items": [{"kind", "id", "label", "enabled"}]}`),
//! and every clicked item is logged on stderr (`vmrun-desktop: tray: ID`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Wry};
use tokio::sync::{mpsc, Notify};
use vmrun_ui_server::relay::{relay_stream, StreamEvent};
use vmrun_ui_server::tray::{
    menu_items, snapshot, tooltip, MenuEntry, Snapshot, ID_QUIT, ID_SHOW, ID_VM_START, ID_VM_STOP,
    OPEN_PREFIX,
};
use vmrun_ui_server::DaemonClient;

const TRAY_ID: &str = "vmrun";

fn build_menu(app: &AppHandle, entries: &[MenuEntry]) -> tauri::Result<Menu<Wry>> {
    let menu = Menu::new(app)?;
    for entry in entries {
        match entry {
            MenuEntry::Item { id, label, enabled } => {
                menu.append(&MenuItem::with_id(
                    app,
                    id.as_str(),
                    label,
                    *enabled,
                    None::<&str>,
                )?)?;
            }
            MenuEntry::Separator => menu.append(&PredefinedMenuItem::separator(app)?)?,
        }
    }
    Ok(menu)
}

/// The test hook's file, written whole (temp file + rename) so readers never see half.
fn report(path: &PathBuf, s: &Snapshot, entries: &[MenuEntry]) {
    let text = serde_json::json!({ "tooltip": tooltip(s), "items": entries }).to_string();
    let tmp = path.with_extension("tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
        eprintln!("vmrun-desktop: cannot write {}: {e}", path.display());
    }
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

fn on_click(app: &AppHandle, id: &str, client: &DaemonClient, refresh: &Arc<Notify>) {
    eprintln!("vmrun-desktop: tray: {id}");
    match id {
        ID_QUIT => app.exit(0),
        ID_SHOW => {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.show();
                let _ = w.set_focus();
            }
        }
        ID_VM_START | ID_VM_STOP => {
            let path = if id == ID_VM_START {
                "/vmrun/vm/start"
            } else {
                "/vmrun/vm/stop"
            };
            let client = client.clone();
            let refresh = refresh.clone();
            tauri::async_runtime::spawn(async move {
                match client.request("POST", path, &[], Bytes::new()).await {
                    Ok(r) if !r.status().is_success() => {
                        eprintln!("vmrun-desktop: {path}: {}", r.status());
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("vmrun-desktop: {path}: {e}"),
                }
                refresh.notify_one();
            });
        }
        other => {
            if let Some(url) = other.strip_prefix(OPEN_PREFIX) {
                open_url(url);
            }
        }
    }
}

/// Creates the tray icon and keeps its menu current.
pub fn install(app: &AppHandle, client: DaemonClient) -> tauri::Result<()> {
    let entries = menu_items(&Snapshot::default());
    let menu = build_menu(app, &entries)?;
    let refresh = Arc::new(Notify::new());
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .menu(&menu)
        .tooltip("vmrun")
        .on_menu_event({
            let client = client.clone();
            let refresh = refresh.clone();
            move |app, event| on_click(app, event.id().as_ref(), &client, &refresh)
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    let tray = builder.build(app)?;
    let app = app.clone();
    tauri::async_runtime::spawn(async move { keep_current(app, tray, client, refresh).await });
    Ok(())
}

/// Rebuilds the menu now, then after each burst of daemon events or a VM action of the
/// tray's own; reconnects every 5 s while the daemon is away.
async fn keep_current(
    app: AppHandle,
    tray: TrayIcon<Wry>,
    client: DaemonClient,
    refresh: Arc<Notify>,
) {
    let hook = std::env::var_os("VMRUN_DESKTOP_TRAY_FILE").map(PathBuf::from);
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
                let entries = menu_items(&s);
                match build_menu(&app, &entries) {
                    Ok(menu) => {
                        if let Err(e) = tray.set_menu(Some(menu)) {
                            eprintln!("vmrun-desktop: tray menu: {e}");
                        }
                    }
                    Err(e) => eprintln!("vmrun-desktop: tray menu: {e}"),
                }
                let _ = tray.set_tooltip(Some(tooltip(&s)));
                if let Some(path) = &hook {
                    report(path, &s, &entries);
                }
                shown = Some(s);
            }
            // Wait for the next event (or an own action), then let the burst settle.
            let ended = tokio::select! {
                ev = rx.recv() => matches!(ev, Some(StreamEvent::End(_)) | None),
                () = refresh.notified() => false,
            };
            if ended {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut ended = false;
            while let Ok(ev) = rx.try_recv() {
                ended |= matches!(ev, StreamEvent::End(_));
            }
            if ended {
                break;
            }
        }
        events.abort();
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
