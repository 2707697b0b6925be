//! Starting `vmrund` in the background when a command that needs the daemon finds none
//! (every command but `version`, `logout` and `daemon`), and `vmrun daemon ...`, which
//! execs it.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::api::{raw, DEFAULT_HOST};
use crate::error::{CliError, CliResult};

/// The daemon's binary name.
pub const DAEMON_BINARY: &str = "vmrund";
/// Where the auto-started daemon's output goes.
pub const DEFAULT_LOG_PATH: &str = "/var/log/vmrun/vmrund.log";
/// Overrides [`DEFAULT_LOG_PATH`] (tests that run private daemons).
pub const LOG_PATH_ENV: &str = "VMRUN_DAEMON_LOG";
/// How long to wait for the new daemon's `_ping`.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Finds `vmrund` next to the running executable, else in `PATH`.
pub fn find_daemon_binary() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(DAEMON_BINARY)));
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    find_in(beside, &path_var)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn find_in(beside: Option<PathBuf>, path_var: &std::ffi::OsStr) -> Option<PathBuf> {
    if let Some(p) = beside.filter(|p| is_executable(p)) {
        return Some(p);
    }
    std::env::split_paths(path_var)
        .map(|dir| dir.join(DAEMON_BINARY))
        .find(|p| is_executable(p))
}

/// The daemon's arguments: `--host` when `host` is not the default, and
/// `--data-root`/`--exec-root` from `VMRUN_DATA_ROOT`/`VMRUN_EXEC_ROOT`.
pub fn daemon_args(
    host: &str,
    data_root: Option<OsString>,
    exec_root: Option<OsString>,
) -> Vec<OsString> {
    let mut args = Vec::new();
    if host != DEFAULT_HOST {
        let host = if host.starts_with('/') {
            format!("unix://{host}")
        } else {
            host.to_string()
        };
        args.push("--host".into());
        args.push(host.into());
    }
    if let Some(d) = data_root.filter(|d| !d.is_empty()) {
        args.push("--data-root".into());
        args.push(d);
    }
    if let Some(e) = exec_root.filter(|e| !e.is_empty()) {
        args.push("--exec-root".into());
        args.push(e);
    }
    args
}

/// Starts the daemon for `host` in a new session with its output in the log
/// file, waits until `socket` answers `_ping`, and says so on stderr.
pub async fn start_daemon(host: &str, socket: &Path) -> CliResult<()> {
    let binary = find_daemon_binary().ok_or_else(|| {
        CliError::new(
            1,
            format!(
                "cannot connect to the vmrun daemon at {host}, and no `{DAEMON_BINARY}` was found next to vmrun or in PATH to start it"
            ),
        )
    })?;
    let log_path = std::env::var_os(LOG_PATH_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LOG_PATH));
    let fail = |what: String| CliError::new(1, what);
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| fail(format!("cannot open {}: {e}", log_path.display())))?;
    let log_err = log
        .try_clone()
        .map_err(|e| fail(format!("cannot open {}: {e}", log_path.display())))?;
    let args = daemon_args(
        host,
        std::env::var_os("VMRUN_DATA_ROOT"),
        std::env::var_os("VMRUN_EXEC_ROOT"),
    );
    let mut command = Command::new(&binary);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setsid(2), which is async-signal-safe and touches no memory
    // shared with the parent.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| fail(format!("cannot start {}: {e}", binary.display())))?;
    let pid = child.id();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if raw::ping(socket, Duration::from_millis(500)).await {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(format!(
                "the vmrun daemon ({}) exited at start-up with {status}; see {}",
                binary.display(),
                log_path.display()
            )));
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "started the vmrun daemon (pid {pid}) but {host} did not answer within {} s; see {}",
                START_TIMEOUT.as_secs(),
                log_path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "vmrun: started the vmrun daemon (pid {pid}, log {})",
        log_path.display()
    );
    Ok(())
}

/// `vmrun daemon ARGS...`: replaces this process with `vmrund ARGS...`.
pub fn exec_daemon(args: &[OsString]) -> CliError {
    let Some(binary) = find_daemon_binary() else {
        return CliError::new(
            1,
            format!("no `{DAEMON_BINARY}` found next to vmrun or in PATH"),
        );
    };
    let err = Command::new(&binary).args(args).exec();
    CliError::new(1, format!("cannot exec {}: {err}", binary.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_pass_non_default_host_and_roots() {
        assert!(daemon_args(DEFAULT_HOST, None, None).is_empty());
        let args = daemon_args(
            "unix:///tmp/t.sock",
            Some("/tmp/data".into()),
            Some("/tmp/exec".into()),
        );
        assert_eq!(
            args,
            [
                "--host",
                "unix:///tmp/t.sock",
                "--data-root",
                "/tmp/data",
                "--exec-root",
                "/tmp/exec"
            ]
            .map(OsString::from)
        );
        assert_eq!(
            daemon_args("/tmp/t.sock", Some("".into()), None),
            ["--host", "unix:///tmp/t.sock"].map(OsString::from)
        );
    }

    #[test]
    fn binary_lookup_prefers_the_executable_dir() {
        use std::os::unix::fs::PermissionsExt;
        let beside = tempfile::tempdir().unwrap();
        let in_path = tempfile::tempdir().unwrap();
        let make = |dir: &Path| {
            let p = dir.join(DAEMON_BINARY);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let from_path = make(in_path.path());
        let path_var = std::env::join_paths([in_path.path()]).unwrap();
        assert_eq!(
            find_in(Some(beside.path().join(DAEMON_BINARY)), &path_var),
            Some(from_path)
        );
        let next_to = make(beside.path());
        assert_eq!(find_in(Some(next_to.clone()), &path_var), Some(next_to));
        assert_eq!(find_in(None, std::ffi::OsStr::new("")), None);
    }
}
