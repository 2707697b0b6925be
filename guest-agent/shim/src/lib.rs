//! Per-container monitor process ("shim"), and the small protocol the daemon speaks to it.
//!
//! The daemon starts one `vmrun-shim` process per container (and one per exec). The shim
//! mounts the container's root filesystem, creates the container through the runtime
//! library, and then owns everything that must outlive a daemon restart: the container's
//! stdio, its json-file log, and the record of how it exited.
//!
//! Sequence:
//! 1. The daemon writes a [`ShimConfig`] as JSON and runs `vmrun-shim CONFIG_PATH`.
//! 2. The shim prepares the container (created, blocked before `exec`), listens on
//!    [`ShimConfig::socket`], and prints one [`ReadyLine`] on stdout.
//! 3. The daemon connects attach streams and a waiter, then sends [`Request::Start`].
//! 4. When the process exits, the shim drains its output, cleans up, writes
//!    [`ExitStatus`] to [`ShimConfig::exit_file`], answers every waiter and exits.
//!
//! Every connection to the socket begins with one JSON [`Request`] line.
//! `Attach` turns the connection into a raw stream (docker's multiplexed framing,
//! see [`frame`], unless the process has a terminal); the others get one JSON reply line.

pub mod frame;
pub mod log_cursor;
pub mod logfile;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What one shim runs: a container's init process or an exec inside a running container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    /// Container id.
    pub id: String,
    /// Runtime state directory (`vmrun_runtime::Runtime::new`).
    pub runtime_root: PathBuf,
    /// Container init or exec.
    pub mode: ShimMode,
    /// The process has a pseudo-terminal.
    pub tty: bool,
    /// Keep a stdin pipe open for attach clients.
    pub open_stdin: bool,
    /// Close the process's stdin when the first attached stdin ends.
    pub stdin_once: bool,
    /// Initial terminal size `[height, width]`, set before the process runs.
    #[serde(default)]
    pub console_size: Option<[u16; 2]>,
    /// json-file log to append output to; `None` keeps no log (execs).
    pub log_path: Option<PathBuf>,
    /// How the log rotates (`--log-opt max-size`/`max-file`); `None`: it grows.
    #[serde(default)]
    pub log_rotation: Option<logfile::Rotation>,
    /// Unix socket the shim serves [`Request`]s on.
    pub socket: PathBuf,
    /// Where the shim writes [`ExitStatus`] when the process has exited.
    pub exit_file: PathBuf,
}

/// The two kinds of process a shim watches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShimMode {
    /// A container's init process, from an OCI bundle.
    Container {
        /// Bundle directory with `config.json`.
        bundle: PathBuf,
        /// Overlay layers to mount at the bundle's root before creating the container.
        rootfs: Option<OverlayRootfs>,
        /// Docker-style user (`name`, `uid`, `name:group`, `uid:gid`), resolved against the
        /// image's `/etc/passwd` once the root filesystem is mounted.
        user: Option<String>,
    },
    /// An extra process inside a running container.
    Exec {
        /// Exec id (for logs and errors).
        exec_id: String,
        /// The OCI process to run.
        process: Box<oci_spec::runtime::Process>,
    },
}

/// An overlayfs root filesystem.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverlayRootfs {
    /// Read-only layers, bottom-most first (the order images list them).
    pub layers: Vec<PathBuf>,
    /// Per-container writable layer.
    pub upper: PathBuf,
    /// overlayfs work directory (same filesystem as `upper`).
    pub work: PathBuf,
    /// Mount point.
    pub target: PathBuf,
}

/// The first line the shim prints on stdout: the process is created, or it is not.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyLine {
    /// Created and waiting for [`Request::Start`]; `shim_pid` is the shim itself.
    Ready {
        /// Pid of the shim.
        shim_pid: i32,
    },
    /// Creation failed; the shim has cleaned up and exits.
    Failed(ShimFailure),
}

/// Why a shim could not create or start its process.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ShimFailure {
    /// What went wrong, for humans.
    pub message: String,
    /// Machine-readable class.
    pub kind: FailureKind,
}

impl ShimFailure {
    /// A failure of no particular class.
    pub fn other(message: impl Into<String>) -> Self {
        ShimFailure {
            message: message.into(),
            kind: FailureKind::Other,
        }
    }
}

/// Classes of failure the daemon maps to API errors and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The command does not exist in the container (docker exit code 127).
    NotFound,
    /// The command exists but cannot be executed (docker exit code 126).
    PermissionDenied,
    /// A named user or group is not in the image.
    BadUser,
    /// Anything else.
    Other,
}

/// A request line on the shim's socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Let the created process run. Reply: [`Reply`] with `pid`.
    Start,
    /// Stream the process's stdio over this connection.
    Attach {
        /// Forward bytes read from this connection to the process's stdin.
        stdin: bool,
        /// Send stdout.
        stdout: bool,
        /// Send stderr.
        stderr: bool,
    },
    /// Reply with [`ExitStatus`] when the process has exited.
    Wait,
    /// Resize the terminal.
    Resize {
        /// Rows.
        height: u16,
        /// Columns.
        width: u16,
    },
}

/// Reply to `Start` and `Resize`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    /// Pid of the started process (host pid namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Set when the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ShimFailure>,
}

impl Reply {
    /// A reply carrying an error.
    pub fn error(message: impl Into<String>) -> Self {
        Reply {
            pid: None,
            error: Some(ShimFailure::other(message)),
        }
    }
}

/// How the process ended. Written to [`ShimConfig::exit_file`] and sent to waiters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code; 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// The cgroup's OOM killer ended a process of the container.
    pub oom_killed: bool,
    /// RFC 3339 time with nanoseconds.
    pub finished_at: String,
}

/// Set a terminal's window size (`TIOCSWINSZ`) through its master.
pub fn set_window_size(
    master: &impl std::os::fd::AsRawFd,
    height: u16,
    width: u16,
) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the
    // call; the fd is an open pty master borrowed for the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Current time as docker formats it (RFC 3339, nanoseconds, `Z`).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
