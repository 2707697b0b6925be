//! The cgroup v2 (unified hierarchy) manager.

mod resources;
mod stats;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::fs::{self, keyed_value, read_file, read_optional, write_file};
use crate::{mountinfo, CgroupError, CgroupManager, CgroupStats, DEFAULT_CGROUP_ROOT};

/// How long freeze/thaw may take before we give up.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Manages one cgroup in a cgroup v2 hierarchy.
#[derive(Clone, Debug)]
pub struct V2Manager {
    root: PathBuf,
    relative: PathBuf,
    path: PathBuf,
}

impl V2Manager {
    /// A manager for `cgroups_path` under the cgroup2 mount of this mount namespace
    /// (`/sys/fs/cgroup` when it is cgroup2, else the first cgroup2 mount, such as the hybrid
    /// layout's `/sys/fs/cgroup/unified`).
    pub fn new(cgroups_path: &Path) -> Result<Self, CgroupError> {
        let mounts = mountinfo::cgroup_mounts()?;
        let default_root = Path::new(DEFAULT_CGROUP_ROOT);
        let root = mounts
            .iter()
            .filter(|m| m.v2)
            .find(|m| m.mount_point == default_root)
            .or_else(|| mounts.iter().find(|m| m.v2))
            .map(|m| m.mount_point.clone())
            .ok_or_else(|| CgroupError::NotMounted(PathBuf::from(mountinfo::MOUNTINFO)))?;
        Self::with_root(&root, cgroups_path)
    }

    /// A manager for `cgroups_path` under an explicit hierarchy root (a real cgroup2 mount or a
    /// directory laid out like one, for tests).
    pub fn with_root(root: &Path, cgroups_path: &Path) -> Result<Self, CgroupError> {
        let relative = fs::relative_cgroup_path(cgroups_path)?;
        Ok(V2Manager {
            root: root.to_path_buf(),
            path: root.join(&relative),
            relative,
        })
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates every missing directory from the root down, enabling in each parent's
    /// `cgroup.subtree_control` the controllers it has, so that the leaf gets all of them.
    fn create_with_controllers(&self) -> Result<(), CgroupError> {
        let mut dir = self.root.clone();
        for component in self.relative.components() {
            enable_controllers(&dir)?;
            dir.push(component);
            if !dir.is_dir() {
                fs::create_dir_all(&dir)?;
            }
        }
        Ok(())
    }

    fn wait_frozen(&self, want: bool) -> Result<(), CgroupError> {
        let events = self.path.join("cgroup.events");
        let state = if want { "frozen 1" } else { "frozen 0" };
        let settled = fs::wait_until(FREEZE_TIMEOUT, || {
            let content = read_file(&events)?;
            match keyed_value(&events, &content, "frozen")? {
                Some(v) => Ok((v == 1) == want),
                None => Err(CgroupError::parse(&events, content)),
            }
        })?;
        if settled {
            Ok(())
        } else {
            Err(CgroupError::Timeout {
                path: events,
                state,
            })
        }
    }
}

/// Enables in `dir/cgroup.subtree_control` every controller listed in `dir/cgroup.controllers`
/// that is not enabled yet. One write for all; if the kernel refuses it, one write each, and the
/// ones still refused are logged and skipped (the limits that need them fail later, by name).
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = read_optional(&dir.join("cgroup.controllers"))?.unwrap_or_default();
    let control = dir.join("cgroup.subtree_control");
    let enabled = read_optional(&control)?.unwrap_or_default();
    let missing: Vec<&str> = available
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    if write_file(&control, &all.join(" ")).is_ok() {
        return Ok(());
    }
    for controller in missing {
        if let Err(e) = write_file(&control, &format!("+{controller}")) {
            tracing::warn!(%e, controller, "cannot enable cgroup v2 controller");
        }
    }
    Ok(())
}

impl CgroupManager for V2Manager {
    fn apply(&self, pid: Pid) -> Result<(), CgroupError> {
        self.create_with_controllers()?;
        write_file(&self.path.join("cgroup.procs"), &pid.as_raw().to_string())
    }

    fn set(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        resources::apply(&self.path, resources)
    }

    fn stats(&self) -> Result<CgroupStats, CgroupError> {
        stats::read(&self.path)
    }

    fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        fs::read_pids(&self.path.join("cgroup.procs"))
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        write_file(&self.path.join("cgroup.freeze"), "1")?;
        self.wait_frozen(true)
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        write_file(&self.path.join("cgroup.freeze"), "0")?;
        self.wait_frozen(false)
    }

    fn remove(&self) -> Result<(), CgroupError> {
        fs::remove_cgroup_dir(&self.path)
    }
}
