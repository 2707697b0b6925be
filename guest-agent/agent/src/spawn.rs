//! Running one `vmrun-shim`: its config file, the process (through the [`Reaper`]), and its
//! ready line, with a time limit and a description of where a stuck shim hangs.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vmrun_agent_protocol::{AgentError, ErrorKind};
use vmrun_shim::{ReadyLine, ShimConfig};

use crate::reaper::{ExitWatch, Reaper};
use crate::shim_client;

/// How long a shim gets to create its process (generous: emulated guests are slow).
const SHIM_READY_TIMEOUT: Duration = Duration::from_secs(30);

fn err(kind: ErrorKind, message: impl Into<String>) -> AgentError {
    AgentError::new(kind, message)
}

fn internal(what: impl std::fmt::Display, e: impl std::fmt::Display) -> AgentError {
    err(ErrorKind::Internal, format!("{what}: {e}"))
}

/// Writes `dir/shim.json`, runs `shim` on it (stderr into `dir/shim.log`) and waits for its
/// ready line. Returns the shim's pid and a handle on its exit.
pub async fn run_shim(
    reaper: &Reaper,
    shim: &Path,
    dir: &Path,
    config: &ShimConfig,
) -> Result<(i32, ExitWatch), AgentError> {
    let config_path = dir.join("shim.json");
    let bytes = serde_json::to_vec(config).map_err(|e| internal("encoding the shim config", e))?;
    std::fs::write(&config_path, bytes).map_err(|e| internal("writing shim.json", e))?;
    if !shim.is_file() {
        return Err(err(
            ErrorKind::Internal,
            format!("the shim binary {} is missing", shim.display()),
        ));
    }
    let log_file = dir.join("shim.log");
    let stderr = std::fs::File::create(&log_file).map_err(|e| internal("creating shim.log", e))?;
    let mut cmd = Command::new(shim);
    cmd.arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    tracing::debug!(dir = %dir.display(), "starting a shim");
    let mut watched = reaper
        .spawn(&mut cmd)
        .map_err(|e| internal(format!("running {}", shim.display()), e))?;
    let shim_pid = watched.pid();
    tracing::debug!(shim_pid, "shim started");
    let Some(stdout) = watched.child.stdout.take() else {
        return Err(err(ErrorKind::Internal, "the shim has no stdout pipe"));
    };
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    let line = match tokio::time::timeout(SHIM_READY_TIMEOUT, read).await {
        Ok(joined) => joined
            .map_err(|e| internal("reading the shim's ready line", e))?
            .map_err(|e| internal("reading the shim's ready line", e))?,
        Err(_) => {
            // Say where it is stuck before ending it: the pipe's reader ends with it.
            let stuck = crate::inspect::describe_tree(shim_pid);
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(shim_pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let log = std::fs::read_to_string(&log_file).unwrap_or_default();
            return Err(err(
                    ErrorKind::Internal,
                    format!(
                        "the shim did not get ready within {SHIM_READY_TIMEOUT:?}: {stuck}; its log: {}",
                        log.trim()
                    ),
                ));
        }
    };
    let ready: ReadyLine = match serde_json::from_str(line.trim_end()) {
        Ok(r) => r,
        Err(_) => {
            let log = std::fs::read_to_string(&log_file).unwrap_or_default();
            return Err(err(
                ErrorKind::Internal,
                format!("the shim (pid {shim_pid}) failed: {}", log.trim()),
            ));
        }
    };
    if let ReadyLine::Failed(f) = ready {
        return Err(shim_client::failure_to_error(&f));
    }
    Ok((shim_pid, watched.exit()))
}
