//! The desktop dashboard under test: its front end built from `ui/` (npm ci into the
//! ignored `ui/node_modules`, then `vite build` into `ui/dist`), `vmrun ui --browser`
//! serving it in front of a daemon, and the playwright-core script that drives Debian's
//! chromium against it (`ui/e2e/ui.e2e.mjs`).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use crate::command::{run_with_timeout, CmdOutput};
use crate::env::has_tool;

/// The browser the tests drive (Debian's package; playwright downloads none).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Serializes front-end builds of parallel tests.
const BUILD_LOCK: &str = "/tmp/vmrun-ui-build.lock";

/// The source tree's `ui/`.
pub fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui")
}

/// Why the browser tests cannot run here, if they cannot.
pub fn missing_tools() -> Option<String> {
    if !has_tool("node") || !has_tool("npm") {
        return Some(
            "node/npm not installed (installer/packages.sh: VMRUN_GUI_BUILD_PACKAGES)".into(),
        );
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "{CHROMIUM} not installed (apt-get install chromium)"
        ));
    }
    None
}

fn newer(a: &Path, b: &Path) -> bool {
    let m = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    match (m(a), m(b)) {
        (Some(a), Some(b)) => a > b,
        (_, None) => true,
        _ => false,
    }
}

/// Installs the front end's npm packages when the lock file changed, and builds it.
/// Returns `ui/dist`, or the failed command's output.
pub fn build_front_end() -> Result<PathBuf, String> {
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(BUILD_LOCK)
        .map_err(|e| format!("{BUILD_LOCK}: {e}"))?;
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("{BUILD_LOCK}: {e}"))?;
    let ui = ui_dir();
    let installed = ui.join("node_modules/.package-lock.json");
    if newer(&ui.join("package-lock.json"), &installed) {
        let mut cmd = Command::new("npm");
        cmd.args(["ci", "--no-audit", "--no-fund"]).current_dir(&ui);
        let out = run_with_timeout(cmd, None, Duration::from_secs(600));
        if !out.success() {
            return Err(format!("npm ci failed: {out}"));
        }
    }
    // Only when a source changed (as ui/build-desktop.sh does): a rebuilt ui/dist makes
    // cargo recompile the desktop app, which embeds it.
    let built = ui.join("dist/index.html");
    let sources = [
        "src",
        "index.html",
        "vite.config.ts",
        "tsconfig.json",
        "package.json",
        "package-lock.json",
    ];
    if sources.iter().any(|s| newer_in(&ui.join(s), &built)) {
        let mut cmd = Command::new("npm");
        cmd.args(["run", "build"]).current_dir(&ui);
        let out = run_with_timeout(cmd, None, Duration::from_secs(300));
        if !out.success() {
            return Err(format!("npm run build failed: {out}"));
        }
    }
    Ok(ui.join("dist"))
}

/// Whether `path` or anything under it is newer than `than` (or `than` is missing).
fn newer_in(path: &Path, than: &Path) -> bool {
    if newer(path, than) {
        return true;
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().any(|e| newer_in(&e.path(), than)))
        .unwrap_or(false)
}

/// A running `vmrun ui --browser`; dropping it stops it.
pub struct UiServer {
    child: Child,
    /// The URL it printed (with the token).
    pub url: String,
}

impl UiServer {
    /// Starts `cmd` (a `vmrun ... ui --browser --no-open` command) and reads its URL.
    pub fn start(mut cmd: Command, assets: &Path) -> UiServer {
        cmd.arg("--assets").arg(assets);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting vmrun ui: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading vmrun ui's URL: {e}"));
        let url = line.trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:") && url.contains("/?token="),
            "vmrun ui printed {url:?}"
        );
        UiServer { child, url }
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the browser script with `vars` (UI_URL, UI_CLI, UI_MODE, ...) and a deadline.
pub fn run_browser_script(vars: &[(&str, String)], timeout: Duration) -> CmdOutput {
    let ui = ui_dir();
    let mut cmd = Command::new("node");
    cmd.arg(ui.join("e2e/ui.e2e.mjs")).current_dir(&ui);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, None, timeout)
}

/// The `RESULT {json}` line of the script's output.
pub fn result_of(out: &CmdOutput) -> serde_json::Value {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Why the desktop app cannot be built or shown here, if it cannot.
pub fn missing_desktop_tools() -> Option<String> {
    if let Some(reason) = missing_tools() {
        return Some(reason);
    }
    let webkit = Command::new("pkg-config")
        .args([
            "--exists",
            "webkit2gtk-4.1",
            "javascriptcoregtk-4.1",
            "libsoup-3.0",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !webkit {
        return Some("the WebKitGTK stack is missing (pkg-config webkit2gtk-4.1; installer/packages.sh: VMRUN_TAURI_PACKAGES)".into());
    }
    for tool in ["Xvfb", "xwd", "convert"] {
        if !has_tool(tool) {
            return Some(format!(
                "{tool} not installed (installer/packages.sh: VMRUN_TAURI_PACKAGES)"
            ));
        }
    }
    None
}

/// The desktop app as `ui/build-desktop.sh --bundle` made it.
#[derive(Debug, Clone)]
pub struct DesktopBuild {
    /// The release binary.
    pub binary: PathBuf,
    /// The Debian package Tauri's bundler made of it.
    pub deb: PathBuf,
}

/// Builds the desktop app through Tauri's bundler with `ui/build-desktop.sh --bundle`
/// (minutes when cold; its target dir is outside the checkout; the `.deb` adds about 4 s).
pub fn build_desktop() -> Result<DesktopBuild, String> {
    let mut cmd = Command::new("bash");
    cmd.arg(ui_dir().join("build-desktop.sh")).arg("--bundle");
    let out = run_with_timeout(cmd, None, Duration::from_secs(1800));
    if !out.success() {
        return Err(format!("ui/build-desktop.sh --bundle failed: {out}"));
    }
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    let binary = PathBuf::from(lines.last().copied().unwrap_or_default());
    if !binary.is_file() {
        return Err(format!("ui/build-desktop.sh printed no binary: {out}"));
    }
    let deb = lines
        .iter()
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .ok_or_else(|| format!("ui/build-desktop.sh --bundle printed no .deb: {out}"))?;
    Ok(DesktopBuild { binary, deb })
}

/// A private X server (`Xvfb :N`); dropping it stops it.
pub struct Xvfb {
    child: Child,
    /// `:N`.
    pub display: String,
}

impl Xvfb {
    /// Starts one on the first free display from :91.
    pub fn start() -> Result<Xvfb, String> {
        for n in 91..120 {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                || Path::new(&format!("/tmp/.X{n}-lock")).exists()
            {
                continue;
            }
            let display = format!(":{n}");
            let child = Command::new("Xvfb")
                .args([
                    display.as_str(),
                    "-screen",
                    "0",
                    "1280x800x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting Xvfb: {e}"))?;
            let mut x = Xvfb { child, display };
            for _ in 0..100 {
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                    return Ok(x);
                }
                if x.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            return Err(format!("Xvfb {} did not come up", x.display));
        }
        Err("no free X display in :91..:119".into())
    }

    /// A screenshot of the whole screen as PNG (`xwd | convert`).
    pub fn screenshot(&self, png: &Path) -> Result<(), String> {
        let script = format!(
            "xwd -root -silent -display {} | convert xwd:- png:'{}'",
            self.display,
            png.display()
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]);
        let out = run_with_timeout(cmd, None, Duration::from_secs(30));
        if !out.success() {
            return Err(format!("screenshot failed: {out}"));
        }
        Ok(())
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
