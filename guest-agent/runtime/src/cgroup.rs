//! The runtime's only contact with `vmrun-cgroups`.

use std::path::Path;

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::error::RuntimeError;

/// The cgroup of one container.
pub(crate) struct Cgroup(Box<dyn vmrun_cgroups::CgroupManager>);

impl std::fmt::Debug for Cgroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cgroup")
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Cgroup(format!("{what}: {e}"))
}

impl Cgroup {
    /// The manager for `path` (like `/vmrun/<id>`), v1 or v2 as the host has.
    pub(crate) fn open(path: &Path) -> Result<Self, RuntimeError> {
        vmrun_cgroups::manager(path)
            .map(Cgroup)
            .map_err(|e| err(&format!("open {}", path.display()), e))
    }

    /// Creates the cgroup if needed and moves `pid` in.
    pub(crate) fn apply(&self, pid: Pid) -> Result<(), RuntimeError> {
        self.0.apply(pid).map_err(|e| err("add process", e))
    }

    /// Sets memory, cpu and pids limits.
    pub(crate) fn set(&self, resources: &LinuxResources) -> Result<(), RuntimeError> {
        self.0.set(resources).map_err(|e| err("set resources", e))
    }

    /// Removes the cgroup.
    pub(crate) fn remove(&self) -> Result<(), RuntimeError> {
        self.0.remove().map_err(|e| err("remove", e))
    }

    /// The processes in the cgroup.
    pub(crate) fn pids(&self) -> Result<Vec<Pid>, RuntimeError> {
        self.0.pids().map_err(|e| err("list processes", e))
    }

    /// Usage counters.
    pub(crate) fn stats(&self) -> Result<vmrun_cgroups::CgroupStats, RuntimeError> {
        self.0.stats().map_err(|e| err("stats", e))
    }
}
