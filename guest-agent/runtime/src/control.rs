//! Operations on an existing container: kill, delete, pause/resume (cgroup
//! freezer), the processes in its cgroup, stats.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::cgroup::Cgroup;
use crate::container::Container;
use crate::error::RuntimeError;
use crate::state::Status;
use crate::Runtime;

impl Runtime {
    /// Sends `signal` to the container's init process. A stopped container
    /// gives [`RuntimeError::NotRunning`]. SIGKILL to a paused container
    /// thaws it, or the kill would wait for `resume` (cgroup v1).
    pub fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        let container = self.load(id)?;
        let status = container.status();
        if status == Status::Stopped {
            return Err(RuntimeError::NotRunning(id.to_owned()));
        }
        kill(container.pid, signal)
            .map_err(|e| RuntimeError::sys(format!("kill {}", container.pid), e))?;
        if status == Status::Paused && signal == Signal::SIGKILL {
            self.thaw_after_kill(&container)?;
        }
        Ok(())
    }

    /// Sends `signal` to every process in the container's cgroup (runc's
    /// `kill --all`). A stopped container whose cgroup still holds processes
    /// (no PID namespace of its own) gets them signalled too.
    pub fn kill_all(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        let container = self.load(id)?;
        let status = container.status();
        let cgroup = Cgroup::open(&container.cgroups_path)?;
        let pids = cgroup.pids().unwrap_or_default();
        if status == Status::Stopped && pids.is_empty() {
            return Ok(());
        }
        for pid in pids {
            // A process may exit meanwhile: ESRCH is fine.
            match kill(pid, signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => return Err(RuntimeError::sys(format!("kill {pid}"), e)),
            }
        }
        if status == Status::Paused && signal == Signal::SIGKILL {
            self.thaw_after_kill(&container)?;
        }
        Ok(())
    }

    /// A frozen cgroup delivers SIGKILL only once thawed (v1): thaw it and
    /// record the container as running again (it is about to stop).
    fn thaw_after_kill(&self, container: &Container) -> Result<(), RuntimeError> {
        Cgroup::open(&container.cgroups_path)?.thaw()?;
        let mut state = container.state.clone();
        state.status = Status::Running;
        state.write(&self.dir(&container.id))
    }

    /// Freezes every process of a running container (cgroup freezer).
    pub fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        let container = self.load(id)?;
        match container.status() {
            Status::Running => {}
            Status::Stopped => return Err(RuntimeError::NotRunning(id.to_owned())),
            status => {
                return Err(RuntimeError::InvalidState {
                    id: id.to_owned(),
                    status: status.to_string(),
                    action: "pause",
                })
            }
        }
        Cgroup::open(&container.cgroups_path)?.freeze()?;
        let mut state = container.state.clone();
        state.status = Status::Paused;
        state.write(&self.dir(id))
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        let container = self.load(id)?;
        match container.status() {
            Status::Paused => {}
            Status::Stopped => return Err(RuntimeError::NotRunning(id.to_owned())),
            status => {
                return Err(RuntimeError::InvalidState {
                    id: id.to_owned(),
                    status: status.to_string(),
                    action: "resume (it is not paused)",
                })
            }
        }
        Cgroup::open(&container.cgroups_path)?.thaw()?;
        let mut state = container.state.clone();
        state.status = Status::Running;
        state.write(&self.dir(id))
    }

    /// The processes in the container's cgroup (pids as the caller sees them).
    pub fn pids(&self, id: &str) -> Result<Vec<Pid>, RuntimeError> {
        let container = self.load(id)?;
        Cgroup::open(&container.cgroups_path)?.pids()
    }

    /// Applies new cgroup limits to a live container (runc's `update`).
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<(), RuntimeError> {
        let container = self.load(id)?;
        if container.status() == Status::Stopped {
            return Err(RuntimeError::NotRunning(id.to_owned()));
        }
        Cgroup::open(&container.cgroups_path)?.set(resources)
    }

    /// Cgroup usage counters of a container.
    pub fn stats(&self, id: &str) -> Result<vmrun_cgroups::CgroupStats, RuntimeError> {
        let container = self.load(id)?;
        Cgroup::open(&container.cgroups_path)?.stats()
    }

    /// Removes the container's cgroup and state. A running or paused
    /// container needs `force` (it is killed); a created one is killed
    /// regardless.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let container = self.load(id)?;
        let status = container.status();
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(RuntimeError::InvalidState {
                id: id.to_owned(),
                status: status.to_string(),
                action: "delete without force",
            });
        }
        let cgroup = Cgroup::open(&container.cgroups_path)?;
        if status != Status::Stopped {
            let _ = kill(container.pid, Signal::SIGKILL);
            // Processes outside a pid namespace of their own survive their init.
            for pid in cgroup.pids().unwrap_or_default() {
                let _ = kill(pid, Signal::SIGKILL);
            }
            if status == Status::Paused {
                let _ = cgroup.thaw();
            }
            wait_gone(&container);
        } else {
            // A stopped init may leave processes behind (no pid namespace).
            for pid in cgroup.pids().unwrap_or_default() {
                let _ = kill(pid, Signal::SIGKILL);
            }
            if container.state.status == Status::Paused {
                let _ = cgroup.thaw();
            }
        }
        cgroup.remove()?;
        let dir = self.dir(id);
        std::fs::remove_dir_all(&dir).map_err(|e| RuntimeError::io("remove", dir, e))
    }
}

fn wait_gone(container: &Container) {
    let deadline = Instant::now() + Duration::from_secs(5);
    // A zombie counts as stopped: reaping stays with the caller.
    while container.status() != Status::Stopped && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}
