//! The runtime's only contact with `vmrun-cgroups`, plus the fast way into a
//! cgroup v1 hierarchy.
//!
//! Moving a process by writing its pid to `cgroup.procs` takes the kernel's
//! global threadgroup lock for writing, which waits for an RCU grace period:
//! about 10 ms on these machines, most of a container's start. Moving only
//! the *calling thread* (`"0"` into the v1 `tasks` file) skips that lock. The
//! freshly forked child is single-threaded, so it joins each v1 hierarchy
//! itself that way, through `tasks` files the parent opened before fork
//! ([`Cgroup::prepare_self_join`], [`join_self`]). On cgroup v2 (`tasks`
//! does not exist there) the parent moves the child as before
//! ([`Cgroup::apply`]).

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use vmrun_cgroups::{CgroupManager, CgroupVersion, V1Manager};

use crate::error::{ChildError, RuntimeError};

/// One v1 hierarchy the container joins: the mount point and its directory there.
#[derive(Debug, Clone)]
struct V1Dir {
    subsystem: &'static str,
    mount_point: PathBuf,
    dir: PathBuf,
}

/// The cgroup of one container.
pub(crate) struct Cgroup {
    manager: Box<dyn CgroupManager>,
    /// The distinct v1 directories (co-mounted controllers share one); empty on v2.
    v1_dirs: Vec<V1Dir>,
}

impl std::fmt::Debug for Cgroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cgroup")
            .field("v1_dirs", &self.v1_dirs)
            .finish()
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Cgroup(format!("{what}: {e}"))
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Cgroup(format!("{what} {}: {e}", path.display()))
}

impl Cgroup {
    /// The manager for `path` (like `/vmrun/<id>`), v1 or v2 as the host has.
    pub(crate) fn open(path: &Path) -> Result<Self, RuntimeError> {
        let open_err = |e| err(&format!("open {}", path.display()), e);
        match vmrun_cgroups::detect().map_err(open_err)? {
            CgroupVersion::V1 => {
                let manager = V1Manager::new(path).map_err(open_err)?;
                let v1_dirs = v1_dirs(&manager, path);
                Ok(Cgroup {
                    manager: Box::new(manager),
                    v1_dirs,
                })
            }
            CgroupVersion::V2 => Ok(Cgroup {
                manager: vmrun_cgroups::manager(path).map_err(open_err)?,
                v1_dirs: Vec::new(),
            }),
        }
    }

    /// For cgroup v1: creates the directories (filling a new cpuset's cpus and
    /// mems from its parent, or no task could join) and opens their `tasks`
    /// files for [`join_self`] in the child. `None` on v2: use [`Cgroup::apply`].
    pub(crate) fn prepare_self_join(&self) -> Result<Option<Vec<OwnedFd>>, RuntimeError> {
        if self.v1_dirs.is_empty() {
            return Ok(None);
        }
        let mut fds = Vec::with_capacity(self.v1_dirs.len());
        for d in &self.v1_dirs {
            std::fs::create_dir_all(&d.dir).map_err(|e| io_err("mkdir", &d.dir, e))?;
            if d.subsystem == "cpuset" {
                populate_cpuset(&d.mount_point, &d.dir)?;
            }
            let tasks = d.dir.join("tasks");
            let fd = open(&tasks, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| io_err("open", &tasks, e))?;
            // SAFETY: open returned a new fd that nothing else owns.
            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        Ok(Some(fds))
    }

    /// Creates the cgroup if needed and moves `pid` in (the slow way).
    pub(crate) fn apply(&self, pid: Pid) -> Result<(), RuntimeError> {
        self.manager.apply(pid).map_err(|e| err("add process", e))
    }

    /// Sets memory, cpu and pids limits.
    pub(crate) fn set(&self, resources: &LinuxResources) -> Result<(), RuntimeError> {
        self.manager
            .set(resources)
            .map_err(|e| err("set resources", e))
    }

    /// Freezes every process of the cgroup (waits until frozen).
    pub(crate) fn freeze(&self) -> Result<(), RuntimeError> {
        self.manager.freeze().map_err(|e| err("freeze", e))
    }

    /// Thaws a frozen cgroup.
    pub(crate) fn thaw(&self) -> Result<(), RuntimeError> {
        self.manager.thaw().map_err(|e| err("thaw", e))
    }

    /// Removes the cgroup.
    pub(crate) fn remove(&self) -> Result<(), RuntimeError> {
        self.manager.remove().map_err(|e| err("remove", e))
    }

    /// The processes in the cgroup.
    pub(crate) fn pids(&self) -> Result<Vec<Pid>, RuntimeError> {
        self.manager.pids().map_err(|e| err("list processes", e))
    }

    /// Usage counters.
    pub(crate) fn stats(&self) -> Result<vmrun_cgroups::CgroupStats, RuntimeError> {
        self.manager.stats().map_err(|e| err("stats", e))
    }
}

/// In the (single-threaded) child: moves itself into each hierarchy by
/// writing `0` to the `tasks` files opened by [`Cgroup::prepare_self_join`].
pub(crate) fn join_self(tasks: &[OwnedFd]) -> Result<(), ChildError> {
    for fd in tasks {
        // SAFETY: a borrowed view of an fd the plan owns; ManuallyDrop keeps it open.
        let mut file =
            std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) });
        file.write_all(b"0")
            .map_err(|e| ChildError::Setup(format!("join cgroup: {e}")))?;
    }
    Ok(())
}

/// The distinct directories of the container in the v1 hierarchies.
fn v1_dirs(manager: &V1Manager, cgroups_path: &Path) -> Vec<V1Dir> {
    let depth = cgroups_path
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count();
    let mut out: Vec<V1Dir> = Vec::new();
    for &subsystem in vmrun_cgroups::v1::SUBSYSTEMS {
        let Some(dir) = manager.subsystem_path(subsystem) else {
            continue;
        };
        if out.iter().any(|d| d.dir == dir) {
            continue;
        }
        let mut mount_point = dir.to_path_buf();
        for _ in 0..depth {
            mount_point.pop();
        }
        out.push(V1Dir {
            subsystem,
            mount_point,
            dir: dir.to_path_buf(),
        });
    }
    out
}

/// Copies `cpuset.cpus`/`cpuset.mems` down from the hierarchy root to `dir`
/// where they are empty (a fresh cpuset cgroup starts empty).
fn populate_cpuset(mount_point: &Path, dir: &Path) -> Result<(), RuntimeError> {
    let Ok(relative) = dir.strip_prefix(mount_point) else {
        return Ok(());
    };
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| io_err("read", p, e));
    let mut parent = mount_point.to_path_buf();
    for component in relative.components() {
        let child = parent.join(component);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let target = child.join(file);
            if read(&target)?.trim().is_empty() {
                let inherited = read(&parent.join(file))?;
                std::fs::write(&target, inherited.trim())
                    .map_err(|e| io_err("write", &target, e))?;
            }
        }
        parent = child;
    }
    Ok(())
}
