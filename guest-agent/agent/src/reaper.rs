//! The one place that calls `waitpid`: reaps every child (and, as PID 1, every orphan) on
//! `SIGCHLD` and hands the statuses of the children the agent spawned to whoever waits.
//!
//! A second `waitpid(-1)` anywhere in the agent would steal these statuses, so nothing else
//! waits: no `std::process::Child::wait`, no `tokio::process`. Children are spawned through
//! [`Reaper::spawn`], which holds the table lock across the fork, so a child that exits at
//! once is still found in the table; reaping takes the same lock before `waitpid`, so it
//! never races `std`'s own wait for a child whose `exec` failed.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// How a child ended: exit code, or 128 + signal.
pub type ExitCode = i32;

#[derive(Default)]
struct Table {
    watched: HashMap<i32, watch::Sender<Option<ExitCode>>>,
}

/// Reaps children; see the module docs.
#[derive(Clone)]
pub struct Reaper {
    table: Arc<Mutex<Table>>,
}

/// A spawned child the reaper watches.
pub struct Watched {
    /// The child as `std` returns it (stdio pipes); never `wait` on it.
    pub child: Child,
    exit: watch::Receiver<Option<ExitCode>>,
}

impl Watched {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A handle that resolves when the child has been reaped.
    pub fn exit(&self) -> ExitWatch {
        ExitWatch(self.exit.clone())
    }
}

/// Resolves with the exit code of one watched child.
#[derive(Clone)]
pub struct ExitWatch(watch::Receiver<Option<ExitCode>>);

impl ExitWatch {
    /// Waits for the exit (at once if it has happened).
    pub async fn wait(&mut self) -> ExitCode {
        match self.0.wait_for(|c| c.is_some()).await {
            Ok(code) => code.unwrap_or(255),
            // The reaper is gone: the agent is shutting down.
            Err(_) => 255,
        }
    }

    /// The exit code, if the child has been reaped.
    pub fn get(&self) -> Option<ExitCode> {
        *self.0.borrow()
    }
}

impl Reaper {
    /// Starts reaping on `SIGCHLD` (needs a tokio runtime with signals enabled).
    pub fn start() -> std::io::Result<Reaper> {
        let reaper = Reaper {
            table: Arc::new(Mutex::new(Table::default())),
        };
        let mut sigchld = signal(SignalKind::child())?;
        let r = reaper.clone();
        tokio::spawn(async move {
            // Children that exited before the handler existed.
            r.reap();
            while sigchld.recv().await.is_some() {
                r.reap();
            }
        });
        Ok(reaper)
    }

    /// Spawns `cmd` and watches it.
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<Watched> {
        let mut table = self
            .table
            .lock()
            .map_err(|_| std::io::Error::other("reaper table poisoned"))?;
        let child = cmd.spawn()?;
        let (tx, rx) = watch::channel(None);
        table.watched.insert(child.id() as i32, tx);
        Ok(Watched { child, exit: rx })
    }

    /// Reaps every child that has exited.
    fn reap(&self) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!("waitpid: {e}");
                    return;
                }
            };
            match table.watched.remove(&pid.as_raw()) {
                Some(tx) => {
                    tracing::debug!(pid = pid.as_raw(), code, "child exited");
                    tx.send_replace(Some(code));
                }
                None => tracing::debug!(pid = pid.as_raw(), code, "reaped an orphan"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn statuses_reach_their_waiters() {
        let reaper = Reaper::start().unwrap();
        let quick = reaper
            .spawn(Command::new("sh").args(["-c", "exit 3"]))
            .unwrap();
        let killed = reaper
            .spawn(Command::new("sh").args(["-c", "kill -9 $$"]))
            .unwrap();
        let mut a = quick.exit();
        let mut b = killed.exit();
        assert_eq!(a.wait().await, 3);
        assert_eq!(b.wait().await, 128 + 9);
        assert_eq!(a.get(), Some(3));
    }
}
