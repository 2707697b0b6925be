//! `vmrun-shim CONFIG.json`: watches one container (or exec) for the daemon.
//! See the library docs for the protocol.

mod process;
mod relay;
mod server;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use vmrun_shim::{ReadyLine, ShimConfig};

fn main() {
    let code = match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vmrun-shim: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn real_main() -> anyhow::Result<i32> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VMRUN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: vmrun-shim CONFIG.json")?;
    let raw = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: ShimConfig =
        serde_json::from_slice(&raw).with_context(|| format!("parsing {}", path.display()))?;

    // Detach from the daemon's session so its signals and its death do not reach us.
    let _ = nix::unistd::setsid();

    let prepared = match process::prepare(&config) {
        Ok(p) => p,
        Err(failure) => {
            announce(&ReadyLine::Failed(failure));
            return Ok(2);
        }
    };
    // The listener exists before we say we are ready, so the daemon can connect at once.
    let _ = std::fs::remove_file(&config.socket);
    let listener = std::os::unix::net::UnixListener::bind(&config.socket)
        .with_context(|| format!("binding {}", config.socket.display()))?;
    announce(&ReadyLine::Ready {
        shim_pid: std::process::id() as i32,
    });
    // Stdout was the daemon's pipe; nothing more goes there.
    redirect_stdout_to_null();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the event loop")?;
    rt.block_on(server::serve(config, prepared, listener))?;
    Ok(0)
}

fn announce(line: &ReadyLine) {
    let mut out = std::io::stdout().lock();
    if let Ok(mut s) = serde_json::to_vec(line) {
        s.push(b'\n');
        let _ = out.write_all(&s);
        let _ = out.flush();
    }
}

fn redirect_stdout_to_null() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        let _ = std::io::stdout().flush();
        // dup2 over fd 1 keeps later accidental prints from failing with EPIPE.
        let _ = nix::unistd::dup2(null.as_raw_fd(), libc::STDOUT_FILENO);
    }
}
