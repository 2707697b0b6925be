//! Cgroup managers for cgroup v1 and v2.
//!
//! [`manager`] picks the right implementation for this machine ([`detect`]); [`V1Manager`] and
//! [`V2Manager`] can also be built directly, with explicit hierarchy roots, for tests against a
//! fake filesystem. Mount points come from `/proc/self/mountinfo`, never from assumptions.

mod convert;
mod error;
mod fs;
pub mod mountinfo;
pub mod v1;
pub mod v2;

use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

pub use convert::shares_to_weight;
pub use error::CgroupError;
pub use v1::V1Manager;
pub use v2::V2Manager;

/// Where the unified hierarchy lives on a pure cgroup v2 system.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// What a runtime needs from the cgroup of one container.
pub trait CgroupManager: Send + Sync {
    /// Creates the cgroup (in every hierarchy, for v1) if needed and moves `pid` into it.
    fn apply(&self, pid: Pid) -> Result<(), CgroupError>;
    /// Applies memory, cpu (quota/period/shares/cpuset) and pids limits.
    fn set(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Reads usage counters and limits.
    fn stats(&self) -> Result<CgroupStats, CgroupError>;
    /// Lists the processes in the cgroup.
    fn pids(&self) -> Result<Vec<Pid>, CgroupError>;
    /// Freezes every process of the cgroup and waits until the kernel reports it frozen.
    fn freeze(&self) -> Result<(), CgroupError>;
    /// Thaws a frozen cgroup.
    fn thaw(&self) -> Result<(), CgroupError>;
    /// Removes the cgroup directory (directories, for v1), retrying briefly while busy.
    fn remove(&self) -> Result<(), CgroupError>;
}

/// Which cgroup interface the machine uses for containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy or hybrid: one hierarchy per controller.
    V1,
    /// Unified hierarchy at /sys/fs/cgroup.
    V2,
}

/// Usage and limits of one cgroup. Counters a hierarchy lacks read as 0 (or `None` for limits).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Current memory usage in bytes.
    pub memory_usage: u64,
    /// Peak memory usage in bytes (v2: `memory.peak`, 0 where the kernel lacks it).
    pub memory_max_usage: u64,
    /// Memory limit in bytes; `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Page cache charged to the cgroup, in bytes.
    pub memory_cache: u64,
    /// Total CPU time in nanoseconds.
    pub cpu_usage_ns: u64,
    /// User CPU time in nanoseconds.
    pub cpu_user_ns: u64,
    /// System CPU time in nanoseconds.
    pub cpu_system_ns: u64,
    /// Number of tasks in the cgroup.
    pub pids_current: u64,
    /// Task limit; `None` when unlimited.
    pub pids_limit: Option<u64>,
    /// How many processes the OOM killer killed in this cgroup.
    pub oom_kill_count: u64,
}

/// Detects the cgroup version of this machine: v2 when `/sys/fs/cgroup` is a cgroup2 mount with
/// controllers (or no v1 hierarchy exists), v1 for legacy and hybrid layouts.
pub fn detect() -> Result<CgroupVersion, CgroupError> {
    let mounts = mountinfo::cgroup_mounts()?;
    let root = Path::new(DEFAULT_CGROUP_ROOT);
    let root_is_v2 = mounts.iter().any(|m| m.v2 && m.mount_point == root);
    let root_controllers = if root_is_v2 {
        fs::read_optional(&root.join("cgroup.controllers"))?.unwrap_or_default()
    } else {
        String::new()
    };
    detect_from(&mounts, &root_controllers)
        .ok_or_else(|| CgroupError::NotMounted(PathBuf::from(mountinfo::MOUNTINFO)))
}

/// The decision of [`detect`], given the cgroup mounts and the content of
/// `/sys/fs/cgroup/cgroup.controllers` (empty when that is not a cgroup2 mount).
fn detect_from(mounts: &[mountinfo::CgroupMount], root_controllers: &str) -> Option<CgroupVersion> {
    let root = Path::new(DEFAULT_CGROUP_ROOT);
    let has_v1 = mounts
        .iter()
        .any(|m| !m.v2 && m.controllers.iter().any(|c| !c.starts_with("name=")));
    let root_is_v2 = mounts.iter().any(|m| m.v2 && m.mount_point == root);
    if root_is_v2 && (!root_controllers.trim().is_empty() || !has_v1) {
        return Some(CgroupVersion::V2);
    }
    if has_v1 {
        return Some(CgroupVersion::V1);
    }
    mounts.iter().any(|m| m.v2).then_some(CgroupVersion::V2)
}

/// Builds the manager for `cgroups_path` (like "/vmrun/<id>", relative to each hierarchy root)
/// for this machine's cgroup version.
pub fn manager(cgroups_path: &Path) -> Result<Box<dyn CgroupManager>, CgroupError> {
    Ok(match detect()? {
        CgroupVersion::V1 => Box::new(V1Manager::new(cgroups_path)?),
        CgroupVersion::V2 => Box::new(V2Manager::new(cgroups_path)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts(text: &str) -> Vec<mountinfo::CgroupMount> {
        mountinfo::parse_cgroup_mounts(Path::new("test"), text).unwrap()
    }

    #[test]
    fn detects_versions() {
        let pure_v2 = mounts("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert_eq!(
            detect_from(&pure_v2, "cpu memory pids\n"),
            Some(CgroupVersion::V2)
        );
        let hybrid = mounts(
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        );
        assert_eq!(detect_from(&hybrid, ""), Some(CgroupVersion::V1));
        let legacy = mounts("35 31 0:32 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n");
        assert_eq!(detect_from(&legacy, ""), Some(CgroupVersion::V1));
        assert_eq!(detect_from(&[], ""), None);
    }

    #[test]
    fn detects_this_machine() {
        // Whatever the machine is, detection must succeed and a manager must be buildable.
        let version = detect().unwrap();
        manager(Path::new("/vmrun/detect-test")).unwrap();
        eprintln!("this machine: {version:?}");
    }
}
