//! A running VM: the [`VmInstance`] trait and its one implementation over monitor processes.

use std::fmt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::VmError;
use crate::exit::VmExit;
use crate::hybrid_vsock::{self, HybridVsockError};
use crate::process::{describe_status, log_tail, Monitor};

/// How long helpers (vhost-device-vsock) get after the VM is gone.
const HELPER_GRACE: Duration = Duration::from_secs(1);
/// How much of a monitor's stderr goes into messages.
const STDERR_TAIL: usize = 2000;
/// How much of the monitor's log [`VmInstance::monitor_log`] gives (a debug log is long).
const MONITOR_LOG_TAIL: usize = 16 * 1024;

/// A launched VM. Dropping it kills what is still running and removes its sockets.
pub trait VmInstance: Send + Sync + fmt::Debug {
    /// `"vmm"` or `"qemu"`.
    fn backend(&self) -> &'static str;
    /// The pid of the monitor process (`vmrun-vmm` or `qemu-system-x86_64`).
    fn pid(&self) -> u32;
    /// The hybrid vsock Unix socket ([`crate::hybrid_vsock`]).
    fn vsock_path(&self) -> &Path;
    /// Connects to guest vsock `port`, retrying while the guest is not listening yet, until
    /// `timeout`; fails early with [`VmError::Stopped`] when the VM ends meanwhile.
    fn connect(&self, port: u32, timeout: Duration) -> Result<UnixStream, VmError>;
    /// Why the VM stopped, if it has (never blocks).
    fn try_wait(&self) -> Result<Option<VmExit>, VmError>;
    /// Blocks until the VM stops; may be called from several threads, and again later.
    fn wait(&self) -> Result<VmExit, VmError>;
    /// SIGTERM to the monitor, SIGKILL after `grace`; returns why it stopped (which is not
    /// [`VmExit::Stopped`] if the VM had already ended by itself).
    fn stop(&self, grace: Duration) -> Result<VmExit, VmError>;
    /// The tail of the monitor's error output so far (what a failed check should show).
    fn monitor_log(&self) -> String;
}

/// What a backend knows when its monitor has exited.
pub(crate) struct ExitFacts {
    pub status: ExitStatus,
    pub stop_requested: bool,
    /// The tail of the monitor's stderr.
    pub stderr: String,
    /// QEMU's `SHUTDOWN` event reason, when it sent one.
    pub qmp_reason: Option<String>,
}

impl ExitFacts {
    /// The monitor's error output for a message, or a note that there was none.
    pub fn stderr_text(&self) -> &str {
        if self.stderr.is_empty() {
            "(no error output)"
        } else {
            &self.stderr
        }
    }
}

/// A monitor process plus helpers, with their files.
pub(crate) struct ProcessVm {
    pub backend: &'static str,
    pub main: Monitor,
    pub main_log: PathBuf,
    /// Stopped after the main monitor has exited.
    pub helpers: Vec<Monitor>,
    pub vsock_path: PathBuf,
    /// Private files (stderr logs, the vhost-user socket); removed on drop.
    pub run_dir: tempfile::TempDir,
    pub classify: fn(ExitFacts) -> VmExit,
    pub qmp: Mutex<Option<JoinHandle<Option<String>>>>,
    pub stop_requested: AtomicBool,
    pub exit: Mutex<Option<VmExit>>,
}

impl fmt::Debug for ProcessVm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessVm")
            .field("backend", &self.backend)
            .field("pid", &self.main.pid())
            .field("vsock_path", &self.vsock_path)
            .field("run_dir", &self.run_dir.path())
            .finish()
    }
}

impl ProcessVm {
    /// Records why the VM stopped (once): stops helpers, collects QEMU's reason.
    fn finish(&self, status: ExitStatus) -> Result<VmExit, VmError> {
        let mut exit = self
            .exit
            .lock()
            .map_err(|_| VmError::Stopped("VM exit lock poisoned".into()))?;
        if let Some(done) = &*exit {
            return Ok(done.clone());
        }
        for helper in &self.helpers {
            if let Err(e) = helper.terminate(HELPER_GRACE) {
                tracing::warn!(pid = helper.pid(), "stopping a VM helper: {e}");
            }
        }
        let qmp_reason = match self.qmp.lock().ok().and_then(|mut h| h.take()) {
            Some(handle) => handle.join().ok().flatten(),
            None => None,
        };
        let facts = ExitFacts {
            status,
            stop_requested: self.stop_requested.load(Ordering::SeqCst),
            stderr: log_tail(&self.main_log, STDERR_TAIL),
            qmp_reason,
        };
        let why = (self.classify)(facts);
        tracing::info!(
            backend = self.backend,
            pid = self.main.pid(),
            "VM stopped: {why}"
        );
        *exit = Some(why.clone());
        Ok(why)
    }

    fn io(&self, what: &str, e: std::io::Error) -> VmError {
        VmError::io(
            format!("{} monitor (pid {}): {what}", self.backend, self.main.pid()),
            e,
        )
    }
}

impl VmInstance for ProcessVm {
    fn backend(&self) -> &'static str {
        self.backend
    }

    fn pid(&self) -> u32 {
        self.main.pid()
    }

    fn vsock_path(&self) -> &Path {
        &self.vsock_path
    }

    fn connect(&self, port: u32, timeout: Duration) -> Result<UnixStream, VmError> {
        let alive = || match self.main.try_status() {
            Ok(Some(status)) => Err(describe_status(status)),
            _ => Ok(()),
        };
        match hybrid_vsock::connect_while(&self.vsock_path, port, timeout, alive) {
            Ok((stream, _host_port)) => Ok(stream),
            Err(HybridVsockError::GaveUp { .. }) => {
                let why = self.try_wait()?;
                Err(VmError::Stopped(why.map_or_else(
                    || "the monitor exited".to_string(),
                    |w| w.to_string(),
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn try_wait(&self) -> Result<Option<VmExit>, VmError> {
        match self.main.try_status().map_err(|e| self.io("waiting", e))? {
            Some(status) => self.finish(status).map(Some),
            None => Ok(None),
        }
    }

    fn wait(&self) -> Result<VmExit, VmError> {
        let status = self.main.wait().map_err(|e| self.io("waiting", e))?;
        self.finish(status)
    }

    fn stop(&self, grace: Duration) -> Result<VmExit, VmError> {
        self.stop_requested.store(true, Ordering::SeqCst);
        let status = self
            .main
            .terminate(grace)
            .map_err(|e| self.io("stopping", e))?;
        self.finish(status)
    }

    fn monitor_log(&self) -> String {
        log_tail(&self.main_log, MONITOR_LOG_TAIL)
    }
}

impl Drop for ProcessVm {
    fn drop(&mut self) {
        self.stop_requested.store(true, Ordering::SeqCst);
        for m in std::iter::once(&self.main).chain(&self.helpers) {
            if matches!(m.signal(libc::SIGKILL), Ok(true)) {
                let _ = m.wait();
            }
        }
        remove_socket(&self.vsock_path);
    }
}

/// Removes `path` if it is a socket (never anything else).
pub(crate) fn remove_socket(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Waits until `socket` exists, failing if one of `monitors` (name, monitor, stderr log)
/// exits first or `timeout` passes.
pub(crate) fn wait_for_socket(
    socket: &Path,
    monitors: &[(&'static str, &Monitor, &Path)],
    timeout: Duration,
) -> Result<(), VmError> {
    let deadline = Instant::now() + timeout;
    loop {
        if std::fs::symlink_metadata(socket).is_ok_and(|m| m.file_type().is_socket()) {
            return Ok(());
        }
        for (program, monitor, log) in monitors {
            let status = monitor
                .try_status()
                .map_err(|e| VmError::io(format!("waiting for {program}"), e))?;
            if let Some(status) = status {
                return Err(VmError::StartFailed {
                    program,
                    status: describe_status(status),
                    stderr: log_tail(log, STDERR_TAIL),
                });
            }
        }
        if Instant::now() >= deadline {
            return Err(VmError::StartTimeout {
                seconds: timeout.as_secs(),
                what: format!("{} did not appear", socket.display()),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Kills monitors started by a launch that failed halfway, and removes the VM's socket.
pub(crate) struct StartGuard {
    pub monitors: Vec<Monitor>,
    pub vsock_path: Option<PathBuf>,
}

impl StartGuard {
    pub fn new(vsock_path: &Path) -> Self {
        StartGuard {
            monitors: Vec::new(),
            vsock_path: Some(vsock_path.to_owned()),
        }
    }

    /// The launch succeeded: hand the monitors over.
    pub fn disarm(mut self) -> Vec<Monitor> {
        self.vsock_path = None;
        std::mem::take(&mut self.monitors)
    }
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        for m in self.monitors.iter().rev() {
            if matches!(m.signal(libc::SIGKILL), Ok(true)) {
                let _ = m.wait();
            }
        }
        if let Some(path) = &self.vsock_path {
            remove_socket(path);
        }
    }
}
