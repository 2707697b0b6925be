//! The `cgroup` mount inside a container, laid out like the host's
//! `/sys/fs/cgroup` (pure v2, or v1/hybrid with one directory per hierarchy).
//!
//! With a cgroup namespace each hierarchy is mounted fresh (its root is then
//! the container's cgroup); without one, the container's own cgroup
//! directories are bind-mounted from the host, as runc does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::mount::MsFlags;

use crate::error::{ChildError, RuntimeError};
use crate::mounts::{do_mount, remount_bind};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One mounted hierarchy of the host.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchy {
    /// Directory name under `/sys/fs/cgroup` (`memory`, `cpu,cpuacct`, `unified`).
    name: String,
    /// `cgroup` or `cgroup2`.
    fstype: &'static str,
    /// Mount data for a fresh mount (`cpu,cpuacct`, `xattr,name=systemd`).
    data: String,
    /// The controllers as `/proc/self/cgroup` lists them (empty for v2).
    controllers: BTreeSet<String>,
}

/// How the host's cgroup filesystems are laid out.
#[derive(Debug, Clone)]
pub(crate) enum CgroupMount {
    /// `/sys/fs/cgroup` is cgroup2.
    Unified,
    /// A tmpfs with one mount per hierarchy, and symlinks like `cpu -> cpu,cpuacct`.
    Legacy {
        hierarchies: Vec<Hierarchy>,
        links: Vec<(String, PathBuf)>,
    },
}

impl CgroupMount {
    /// The host's layout, read once per process.
    pub(crate) fn host_layout() -> Result<CgroupMount, RuntimeError> {
        static LAYOUT: OnceLock<CgroupMount> = OnceLock::new();
        if let Some(layout) = LAYOUT.get() {
            return Ok(layout.clone());
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| RuntimeError::io("read", "/proc/self/mountinfo", e))?;
        let layout = parse_layout(&mountinfo);
        let layout = match layout {
            CgroupMount::Legacy { hierarchies, .. } => {
                let mut links = Vec::new();
                if let Ok(dir) = std::fs::read_dir(CGROUP_ROOT) {
                    for entry in dir.flatten() {
                        if let Ok(target) = std::fs::read_link(entry.path()) {
                            links.push((entry.file_name().to_string_lossy().into_owned(), target));
                        }
                    }
                }
                CgroupMount::Legacy { hierarchies, links }
            }
            unified => unified,
        };
        Ok(LAYOUT.get_or_init(|| layout).clone())
    }

    /// In the child, after it was moved into its cgroup: mounts at `target`.
    pub(crate) fn mount_at(
        &self,
        target: &Path,
        flags: MsFlags,
        new_ns: bool,
    ) -> Result<(), ChildError> {
        let own = own_cgroups()?;
        match self {
            CgroupMount::Unified => mount_hierarchy(
                "cgroup2",
                "",
                &BTreeSet::new(),
                &own,
                Path::new(CGROUP_ROOT),
                target,
                flags,
                new_ns,
            ),
            CgroupMount::Legacy { hierarchies, links } => {
                let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                do_mount(
                    Some(Path::new("cgroup")),
                    target,
                    Some("tmpfs"),
                    tmpfs_flags,
                    Some("mode=755"),
                )?;
                for h in hierarchies {
                    let dir = target.join(&h.name);
                    crate::mounts::create_mount_point(&dir, false)?;
                    let host = Path::new(CGROUP_ROOT).join(&h.name);
                    mount_hierarchy(
                        h.fstype,
                        &h.data,
                        &h.controllers,
                        &own,
                        &host,
                        &dir,
                        flags,
                        new_ns,
                    )?;
                }
                for (name, link) in links {
                    let _ = std::os::unix::fs::symlink(link, target.join(name));
                }
                if flags.contains(MsFlags::MS_RDONLY) {
                    do_mount(
                        None,
                        target,
                        None,
                        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | tmpfs_flags,
                        Some("mode=755"),
                    )?;
                }
                Ok(())
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn mount_hierarchy(
    fstype: &str,
    data: &str,
    controllers: &BTreeSet<String>,
    own: &[(BTreeSet<String>, String)],
    host: &Path,
    target: &Path,
    flags: MsFlags,
    new_ns: bool,
) -> Result<(), ChildError> {
    let flags = flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if new_ns {
        let data = (!data.is_empty()).then_some(data);
        return do_mount(Some(Path::new("cgroup")), target, Some(fstype), flags, data);
    }
    let path = own
        .iter()
        .find(|(c, _)| c == controllers)
        .map(|(_, p)| p.trim_start_matches('/'))
        .unwrap_or("");
    do_mount(
        Some(&host.join(path)),
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    remount_bind(target, flags)
}

/// `/proc/self/cgroup` as (controller set, path) pairs; v2 has the empty set.
fn own_cgroups() -> Result<Vec<(BTreeSet<String>, String)>, ChildError> {
    let text = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| ChildError::Setup(format!("read /proc/self/cgroup: {e}")))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let set = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Some((set, path.to_owned()))
        })
        .collect())
}

fn parse_layout(mountinfo: &str) -> CgroupMount {
    let mut hierarchies = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mountpoint) = left.split(' ').nth(4) else {
            continue;
        };
        let mut right = right.split(' ');
        let (Some(fstype), Some(_source), Some(super_options)) =
            (right.next(), right.next(), right.next())
        else {
            continue;
        };
        if fstype == "cgroup2" && mountpoint == CGROUP_ROOT {
            return CgroupMount::Unified;
        }
        let Some(name) = mountpoint.strip_prefix("/sys/fs/cgroup/") else {
            continue;
        };
        let (fstype, data, controllers) = match fstype {
            "cgroup2" => ("cgroup2", String::new(), BTreeSet::new()),
            "cgroup" => {
                let options: Vec<&str> = super_options
                    .split(',')
                    .filter(|o| *o != "rw" && *o != "ro")
                    .collect();
                let controllers = options
                    .iter()
                    .filter(|o| {
                        o.starts_with("name=")
                            || !matches!(
                                **o,
                                "xattr" | "noprefix" | "clone_children" | "cpuset_v2_mode"
                            ) && !o.contains('=')
                    })
                    .map(|o| (*o).to_owned())
                    .collect();
                ("cgroup", options.join(","), controllers)
            }
            _ => continue,
        };
        hierarchies.push(Hierarchy {
            name: name.to_owned(),
            fstype,
            data,
            controllers,
        });
    }
    CgroupMount::Legacy {
        hierarchies,
        links: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid_layout() {
        let info = "\
30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
";
        let CgroupMount::Legacy { hierarchies, .. } = parse_layout(info) else {
            panic!("expected legacy layout");
        };
        assert_eq!(hierarchies.len(), 3);
        assert_eq!(hierarchies[0].fstype, "cgroup2");
        assert_eq!(hierarchies[1].data, "xattr,name=systemd");
        assert!(hierarchies[1].controllers.contains("name=systemd"));
        assert_eq!(hierarchies[1].controllers.len(), 1);
        assert_eq!(hierarchies[2].name, "cpu,cpuacct");
        assert_eq!(hierarchies[2].controllers.len(), 2);
    }

    #[test]
    fn parses_unified_layout() {
        let info = "30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";
        assert!(matches!(parse_layout(info), CgroupMount::Unified));
    }
}
