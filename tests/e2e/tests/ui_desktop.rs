//! The desktop app (ui/src-tauri, Tauri 2 over WebKitGTK) in a real window: built on
//! Linux, started under Xvfb against a real vmrund with a container, and checked through
//! the app's own test hook (`VMRUN_DESKTOP_READY_FILE`: the containers view rendered with
//! data, and which rows) plus a screenshot of the screen (`$VMRUN_UI_SHOTS`, default
//! `/tmp/vmrun-ui-shots/desktop/window.png`). Skips with the reason where the WebKit
//! stack, Xvfb or node is missing. The first run builds the app in release (about 4
//! minutes on 2 cores; later runs reuse ~/.cache/vmrun/tauri-target).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmrun_e2e::ui::{build_desktop, missing_desktop_tools, Xvfb};
use vmrun_e2e::{require_root, Daemon};
use vmrun_test_skip::skip;

#[test]
fn desktop_window_renders_the_containers_view() {
    if !require_root() {
        return;
    }
    if let Some(reason) = missing_desktop_tools() {
        skip!("{reason}");
    }
    let app = build_desktop().unwrap_or_else(|e| panic!("{e}"));
    let d = Daemon::start();
    d.vmrun(&[
        "run",
        "-d",
        "--name",
        "ui-desk-a",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let x = Xvfb::start().unwrap_or_else(|e| panic!("{e}"));
    let shots = std::env::var_os("VMRUN_UI_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/vmrun-ui-shots"))
        .join("desktop");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let ready = d.dir().join("desktop-ready.json");
    let log = std::fs::File::create(d.dir().join("desktop.log")).expect("log file");
    let mut child = Command::new(&app)
        .env("DISPLAY", &x.display)
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        .env("VMRUN_HOST", d.host())
        .env("VMRUN_DESKTOP_READY_FILE", &ready)
        .env("NO_AT_BRIDGE", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", app.display()));
    let start = Instant::now();
    let hook = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                break Some(v);
            }
        }
        if child.try_wait().ok().flatten().is_some() || start.elapsed() > Duration::from_secs(60) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let png = shots.join("window.png");
    let shot = x.screenshot(&png);
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(d.dir().join("desktop.log")).unwrap_or_default();
    let hook = hook.unwrap_or_else(|| {
        panic!("the app never reported a rendered containers view; its log:\n{log}")
    });
    shot.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("desktop app: {hook}; screenshot {}", png.display());
    assert_eq!(hook["view"], "containers", "{hook}");
    assert!(
        hook["rows"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == "ui-desk-a")),
        "the container is not in the rendered view: {hook}\n{log}"
    );
    assert!(
        png.metadata().map(|m| m.len() > 10_000).unwrap_or(false),
        "empty screenshot"
    );
}
