//! The desktop dashboard in a real browser: Debian's chromium driven by playwright-core
//! (`ui/e2e/ui.e2e.mjs`) against `vmrun ui --browser` in front of a real daemon.
//! Screenshots go to `$VMRUN_UI_SHOTS` (default `/tmp/vmrun-ui-shots/<test>`).
//!
//! Against vmrund: a container started with the CLI appears within a second; its logs
//! show what it printed; the terminal runs `echo`; stopping it from the UI stops it (the
//! CLI checks); removing it while it runs asks first; pulling from the local registry
//! shows progress, then the image; a stopped daemon shows the start action, which works.
//! Against Debian's dockerd: the same views list dockerd's objects, which proves the
//! dashboard needs nothing but the Docker API.

use std::path::PathBuf;
use std::time::Duration;

use vmrun_e2e::ui::{build_front_end, missing_tools, result_of, run_browser_script, UiServer};
use vmrun_e2e::{bin_dir, require_root, require_tool, Daemon, ReferenceDaemon};
use vmrun_test_registry::registry::{Auth, Registry};
use vmrun_test_skip::skip;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn shots(test: &str) -> PathBuf {
    let dir = std::env::var_os("VMRUN_UI_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/vmrun-ui-shots"))
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn dashboard_drives_vmrund_in_chromium() {
    if !require_root() || !require_tool("docker-registry") {
        return;
    }
    if let Some(reason) = missing_tools() {
        skip!("{reason}");
    }
    let dist = build_front_end().unwrap_or_else(|e| panic!("{e}"));
    let d = Daemon::start();
    let Some(registry) = Registry::start(Auth::Anonymous) else {
        return;
    };
    // An image with a layer the daemon lacks (3 MB of random bytes on busybox), pushed to
    // the local registry and removed here, so the UI's pull downloads it for real.
    let pull_ref = format!("{}/ui-e2e/busybox:v1", registry.addr);
    let fill = "head -c 3000000 /dev/urandom > /blob";
    d.vmrun(&["run", "--name", "ui-e2e-src", "busybox", "sh", "-c", fill])
        .ok();
    d.vmrun(&["commit", "ui-e2e-src", &pull_ref]).ok();
    d.vmrun(&["push", &pull_ref]).ok();
    d.vmrun(&["rm", "ui-e2e-src"]).ok();
    d.vmrun(&["rmi", &pull_ref]).ok();
    let ui = UiServer::start(d.vmrun_cmd(&["ui", "--browser", "--no-open"]), &dist);
    let cli = serde_json::json!([bin_dir().join("vmrun"), "-H", d.host()]).to_string();
    let shots = shots("vmrund");
    let pid = d.pid().expect("the daemon runs");
    let out = run_browser_script(
        &[
            ("UI_URL", ui.url.clone()),
            ("UI_CLI", cli),
            ("UI_MODE", "vmrund".into()),
            ("UI_SHOTS", shots.display().to_string()),
            ("UI_PULL_REF", pull_ref),
            ("UI_DAEMON_PID", pid.to_string()),
        ],
        SCRIPT_TIMEOUT,
    );
    eprintln!("{out}");
    assert!(
        out.success(),
        "the browser script failed (screenshots in {}):\n{out}",
        shots.display()
    );
    let result = result_of(&out);
    eprintln!(
        "ui e2e (vmrund): {result}; screenshots in {}",
        shots.display()
    );
    assert!(
        result["appearMs"].as_u64().is_some_and(|ms| ms <= 1000),
        "{result}"
    );
    // The daemon the UI's start action launched answers on the same socket.
    assert!(d.vmrun(&["version"]).success());
    // Dropping `d` cleans up the daemon the start action launched too: it serves the same
    // socket, and its processes name our directory.
}

#[test]
fn dashboard_lists_dockerds_objects_too() {
    if !require_root() {
        return;
    }
    if let Some(reason) = missing_tools() {
        skip!("{reason}");
    }
    let reference = match ReferenceDaemon::start() {
        Ok(r) => r,
        Err(reason) => skip!("{reason}"),
    };
    let dist = build_front_end().unwrap_or_else(|e| panic!("{e}"));
    let host = format!("unix://{}", reference.dir().join("d.sock").display());
    let mut cmd = std::process::Command::new(bin_dir().join("vmrun"));
    cmd.args(["-H", &host, "ui", "--browser", "--no-open"]);
    let ui = UiServer::start(cmd, &dist);
    let shots = shots("dockerd");
    let cli = serde_json::json!(["docker", "-H", host]).to_string();
    let out = run_browser_script(
        &[
            ("UI_URL", ui.url.clone()),
            ("UI_CLI", cli),
            ("UI_MODE", "dockerd".into()),
            ("UI_SHOTS", shots.display().to_string()),
        ],
        SCRIPT_TIMEOUT,
    );
    eprintln!("{out}");
    let _ = reference.docker(&["rm", "-f", "ui-ref-a"]);
    assert!(
        out.success(),
        "the browser script failed against dockerd (screenshots in {}):\n{out}",
        shots.display()
    );
    eprintln!(
        "ui e2e (dockerd): {}; screenshots in {}",
        result_of(&out),
        shots.display()
    );
}
