//! The cgroup v1 manager: one directory per controller hierarchy.

mod resources;
mod stats;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::fs::{self, read_file, write_file};
use crate::{mountinfo, CgroupError, CgroupManager, CgroupStats};

/// The v1 controllers a container joins, when their hierarchy is mounted.
pub const SUBSYSTEMS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio", "devices",
];

/// How long a freeze may take before we thaw and give up.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// One controller's place: its hierarchy's mount point and the container's directory in it.
#[derive(Clone, Debug)]
struct Hierarchy {
    subsystem: &'static str,
    mount_point: PathBuf,
    dir: PathBuf,
}

/// Manages one cgroup across the cgroup v1 hierarchies.
#[derive(Clone, Debug)]
pub struct V1Manager {
    hierarchies: Vec<Hierarchy>,
}

impl V1Manager {
    /// A manager for `cgroups_path` in the v1 hierarchies mounted in this mount namespace, found
    /// in `/proc/self/mountinfo` (co-mounted controllers such as "cpu,cpuacct" share one).
    pub fn new(cgroups_path: &Path) -> Result<Self, CgroupError> {
        let mounts = mountinfo::cgroup_mounts()?;
        let mut found: Vec<(&str, &Path)> = Vec::new();
        for mount in mounts.iter().filter(|m| !m.v2) {
            for controller in &mount.controllers {
                if !found.iter().any(|(s, _)| s == controller) {
                    found.push((controller.as_str(), mount.mount_point.as_path()));
                }
            }
        }
        if !found.iter().any(|(s, _)| SUBSYSTEMS.contains(s)) {
            return Err(CgroupError::NotMounted(PathBuf::from(mountinfo::MOUNTINFO)));
        }
        Self::with_mounts(&found, cgroups_path)
    }

    /// A manager for `cgroups_path` with explicit hierarchy mount points, as
    /// `(controller, mount point)` pairs; controllers outside [`SUBSYSTEMS`] are ignored.
    pub fn with_mounts(mounts: &[(&str, &Path)], cgroups_path: &Path) -> Result<Self, CgroupError> {
        let relative = fs::relative_cgroup_path(cgroups_path)?;
        let hierarchies = SUBSYSTEMS
            .iter()
            .filter_map(|subsystem| {
                mounts
                    .iter()
                    .find(|(name, _)| name == subsystem)
                    .map(|(_, mount_point)| Hierarchy {
                        subsystem,
                        mount_point: mount_point.to_path_buf(),
                        dir: mount_point.join(&relative),
                    })
            })
            .collect();
        Ok(V1Manager { hierarchies })
    }

    /// The container's directory in the hierarchy of `subsystem`, if that one is mounted.
    pub fn subsystem_path(&self, subsystem: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.subsystem == subsystem)
            .map(|h| h.dir.as_path())
    }

    fn required(&self, subsystem: &'static str) -> Result<&Path, CgroupError> {
        self.subsystem_path(subsystem)
            .ok_or(CgroupError::ControllerNotMounted(subsystem))
    }

    /// Distinct directories (co-mounted controllers share one), in [`SUBSYSTEMS`] order.
    fn unique_hierarchies(&self) -> Vec<&Hierarchy> {
        let mut out: Vec<&Hierarchy> = Vec::new();
        for h in &self.hierarchies {
            if !out.iter().any(|o| o.dir == h.dir) {
                out.push(h);
            }
        }
        out
    }

    fn freezer_state(&self, want: &'static str) -> Result<(), CgroupError> {
        let state = self.required("freezer")?.join("freezer.state");
        write_file(&state, want)?;
        let settled = fs::wait_until(FREEZE_TIMEOUT, || {
            let now = read_file(&state)?;
            if now.trim() == want {
                return Ok(true);
            }
            // The kernel may leave the cgroup FREEZING while tasks are busy; asking again helps.
            write_file(&state, want)?;
            Ok(false)
        })?;
        if settled {
            return Ok(());
        }
        if want == "FROZEN" {
            let _ = write_file(&state, "THAWED");
        }
        Err(CgroupError::Timeout {
            path: state,
            state: want,
        })
    }
}

/// A fresh cpuset cgroup has empty `cpuset.cpus`/`cpuset.mems`, and no task can join it until
/// they are filled: copy them down from the parent, from the hierarchy root to `dir`.
fn populate_cpuset(mount_point: &Path, dir: &Path) -> Result<(), CgroupError> {
    let Ok(relative) = dir.strip_prefix(mount_point) else {
        return Ok(());
    };
    let mut parent = mount_point.to_path_buf();
    for component in relative.components() {
        let child = parent.join(component);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let current = read_file(&child.join(file))?;
            if current.trim().is_empty() {
                let inherited = read_file(&parent.join(file))?;
                write_file(&child.join(file), inherited.trim())?;
            }
        }
        parent = child;
    }
    Ok(())
}

impl CgroupManager for V1Manager {
    fn apply(&self, pid: Pid) -> Result<(), CgroupError> {
        for h in self.unique_hierarchies() {
            fs::create_dir_all(&h.dir)?;
            if h.subsystem == "cpuset" {
                populate_cpuset(&h.mount_point, &h.dir)?;
            }
            write_file(&h.dir.join("cgroup.procs"), &pid.as_raw().to_string())?;
        }
        Ok(())
    }

    fn set(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        resources::apply(self, resources)
    }

    fn stats(&self) -> Result<CgroupStats, CgroupError> {
        stats::read(self)
    }

    fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        let dir = ["pids", "freezer", "memory", "cpu"]
            .iter()
            .find_map(|s| self.subsystem_path(s))
            .or_else(|| self.hierarchies.first().map(|h| h.dir.as_path()))
            .ok_or(CgroupError::ControllerNotMounted("pids"))?;
        fs::read_pids(&dir.join("cgroup.procs"))
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        self.freezer_state("FROZEN")
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        self.freezer_state("THAWED")
    }

    fn remove(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for h in self.unique_hierarchies() {
            if let Err(e) = fs::remove_cgroup_dir(&h.dir) {
                tracing::warn!(%e, "cannot remove cgroup");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
