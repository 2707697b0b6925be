//! Monitor processes: spawned so that they die with the daemon, signalled without pid-reuse
//! races, reaped once.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

/// The thread every monitor is forked from. `PR_SET_PDEATHSIG` fires when the *thread* that
/// forked the child exits, not the process: forking from a short-lived thread (tokio's
/// blocking pool retires idle threads) would kill VMs at random. This thread never exits.
fn launcher() -> &'static Mutex<mpsc::Sender<Job>> {
    static LAUNCHER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    LAUNCHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("vmrun-vm-launcher".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("spawning the VM launcher thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` from the launcher thread with `PR_SET_PDEATHSIG(death_signal)`, so the child
/// gets `death_signal` when this process dies.
pub(crate) fn spawn_tied(mut cmd: Command, death_signal: i32) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (prctl, getppid) on plain integers.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody would signal us.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other(
                    "the parent exited before the monitor started",
                ));
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(cmd.spawn());
    });
    launcher()
        .lock()
        .map_err(|_| io::Error::other("the VM launcher lock is poisoned"))?
        .send(job)
        .map_err(|_| io::Error::other("the VM launcher thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("the VM launcher thread dropped the request"))?
}

/// One child process. Signals are sent under the lock and only before the child is reaped,
/// so a recycled pid is never signalled; [`Monitor::wait`] blocks without holding the lock.
#[derive(Debug)]
pub(crate) struct Monitor {
    pid: u32,
    state: Mutex<MonitorState>,
}

#[derive(Debug)]
struct MonitorState {
    child: Child,
    status: Option<ExitStatus>,
}

impl Monitor {
    pub(crate) fn new(child: Child) -> Self {
        Monitor {
            pid: child.id(),
            state: Mutex::new(MonitorState {
                child,
                status: None,
            }),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, MonitorState>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("monitor state lock poisoned"))
    }

    /// The exit status if the child has exited (reaping it), without blocking.
    pub(crate) fn try_status(&self) -> io::Result<Option<ExitStatus>> {
        let mut state = self.lock()?;
        if state.status.is_none() {
            state.status = state.child.try_wait()?;
        }
        Ok(state.status)
    }

    /// Blocks until the child exits and returns its status.
    pub(crate) fn wait(&self) -> io::Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        if let Err(e) = wait_exited_no_reap(self.pid) {
            // ECHILD: another thread reaped it meanwhile; its status is stored.
            if e.raw_os_error() != Some(libc::ECHILD) {
                return Err(e);
            }
        }
        self.try_status()?
            .ok_or_else(|| io::Error::other("the monitor exited but could not be reaped"))
    }

    /// [`Monitor::wait`] for at most `timeout`.
    pub(crate) fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `signal` unless the child has already been reaped; says whether it was sent.
    pub(crate) fn signal(&self, signal: i32) -> io::Result<bool> {
        let mut state = self.lock()?;
        if state.status.is_none() {
            state.status = state.child.try_wait()?;
        }
        if state.status.is_some() {
            return Ok(false);
        }
        // SAFETY: kill(2) on our own unreaped child (the pid cannot be recycled while the
        // child is unreaped, and reaping only happens under this lock).
        if unsafe { libc::kill(self.pid as libc::pid_t, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(true)
    }

    /// SIGTERM, then SIGKILL if the child is still there after `grace`; returns its status.
    pub(crate) fn terminate(&self, grace: Duration) -> io::Result<ExitStatus> {
        if self.signal(libc::SIGTERM)? {
            if let Some(status) = self.wait_timeout(grace)? {
                return Ok(status);
            }
            tracing::warn!(
                pid = self.pid,
                "monitor ignored SIGTERM for {grace:?}: SIGKILL"
            );
            self.signal(libc::SIGKILL)?;
        }
        self.wait()
    }
}

/// waitid(WEXITED | WNOWAIT): returns once `pid` has exited, leaving it to be reaped.
fn wait_exited_no_reap(pid: u32) -> io::Result<()> {
    loop {
        // SAFETY: `info` is a zeroed siginfo_t we own, written by waitid.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The exit code, or 128 + signal like a shell, for messages.
pub(crate) fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("{status}"),
    }
}

/// The last `max` bytes of a monitor's stderr log, trimmed, for error messages.
pub(crate) fn log_tail(path: &std::path::Path, max: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}
