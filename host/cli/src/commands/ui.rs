//! `vmrun ui`: the desktop dashboard. `--browser` serves it to a web browser through
//! the adapter in `vmrun-ui-server` (127.0.0.1, a per-launch token in the URL it prints
//! and opens); without it, the installed desktop app (`vmrun-desktop`) is started, or
//! the browser adapter when there is none. The dashboard is a client of the daemon's
//! API only; its "start daemon" action starts `vmrund` as every other command does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::api::socket_path;
use crate::daemon_launch;
use crate::error::{CliError, CliResult};

/// The desktop app's binary (ui/src-tauri), looked for next to vmrun and in PATH.
const DESKTOP_BINARY: &str = "vmrun-desktop";
/// Overrides where the built front end is looked for.
const ASSETS_ENV: &str = "VMRUN_UI_DIR";

/// `vmrun ui` flags.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Serve the dashboard to a web browser instead of starting the desktop app
    #[arg(long)]
    pub browser: bool,
    /// Port on 127.0.0.1 (default: any free port)
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Print the URL only; do not open a browser
    #[arg(long)]
    pub no_open: bool,
    /// The built front end (default: $VMRUN_UI_DIR, PREFIX/share/vmrun/ui, or ui/dist of a source tree)
    #[arg(long, value_name = "DIR")]
    pub assets: Option<PathBuf>,
}

fn find_assets(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = explicit {
        return Some(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os(ASSETS_ENV) {
        return Some(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok()?;
    let bin_dir = exe.parent()?;
    // An install (PREFIX/bin/vmrun → PREFIX/share/vmrun/ui), then a source tree's build
    // (target/{debug,release}/vmrun → ui/dist).
    let candidates = [
        bin_dir.join("../share/vmrun/ui"),
        bin_dir.join("../../ui/dist"),
    ];
    candidates
        .into_iter()
        .find(|d| d.join("index.html").is_file())
}

fn find_desktop() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(DESKTOP_BINARY)));
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    beside
        .into_iter()
        .chain(std::env::split_paths(&path_var).map(|d| d.join(DESKTOP_BINARY)))
        .find(|p| p.is_file())
}

/// Runs `vmrun ui`.
pub async fn ui(host: &str, args: &UiArgs) -> CliResult<i32> {
    let socket = socket_path(host)?;
    if !args.browser {
        if let Some(app) = find_desktop() {
            let status = tokio::process::Command::new(&app)
                .env("VMRUN_HOST", host)
                .status()
                .await
                .map_err(|e| CliError::new(1, format!("cannot start {}: {e}", app.display())))?;
            return Ok(status.code().unwrap_or(1));
        }
        eprintln!("the desktop app ({DESKTOP_BINARY}) is not installed: serving the dashboard to a browser");
    }
    let assets = find_assets(args.assets.as_deref()).ok_or_else(|| {
        CliError::new(
            1,
            format!("the dashboard's front end was not found: build it (`npm ci && npm run build` in ui/) or pass --assets DIR or {ASSETS_ENV}"),
        )
    })?;
    let (start_host, start_socket) = (host.to_string(), socket.clone());
    let starter: vmrun_ui_server::DaemonStarter = Arc::new(move || {
        let (host, socket) = (start_host.clone(), start_socket.clone());
        Box::pin(async move {
            daemon_launch::start_daemon(&host, &socket)
                .await
                .map_err(|e| {
                    e.message
                        .unwrap_or_else(|| "the daemon did not start".into())
                })
        })
    });
    let server = vmrun_ui_server::UiServer::bind(vmrun_ui_server::UiConfig {
        socket,
        assets,
        port: args.port,
        token: None,
        start_daemon: Some(starter),
    })
    .await
    .map_err(|e| CliError::new(1, e.to_string()))?;
    let url = server.url();
    println!("{url}");
    eprintln!(
        "vmrun dashboard at http://{} (Ctrl-C stops it)",
        server.addr()
    );
    if !args.no_open {
        open_browser(&url);
    }
    server
        .serve_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::new(1, e.to_string()))?;
    Ok(0)
}

/// Opens `url` with the desktop's handler, if there is one (errors are only said).
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(e) => eprintln!("could not open a browser ({opener}: {e}): open the URL above"),
    }
}
