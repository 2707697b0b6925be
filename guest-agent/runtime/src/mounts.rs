//! `spec.mounts`: option parsing (parent side) and mounting (child side).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use crate::cgroupfs::CgroupMount;
use crate::error::{ChildError, RuntimeError};

/// Mount flags and data parsed from fstab-style options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// Flags for the mount call (`MS_BIND`, `MS_REC`, `MS_RDONLY`, ...).
    pub(crate) flags: MsFlags,
    /// Propagation flags, applied by a separate call.
    pub(crate) propagation: MsFlags,
    /// Filesystem-specific data (`mode=755,size=65536k`).
    pub(crate) data: String,
}

impl MountOptions {
    pub(crate) fn parse(options: &[String]) -> Self {
        let mut parsed = MountOptions {
            flags: MsFlags::empty(),
            propagation: MsFlags::empty(),
            data: String::new(),
        };
        for option in options {
            let (clear, set) = match option.as_str() {
                "defaults" | "tmpcopyup" => (MsFlags::empty(), MsFlags::empty()),
                "ro" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "rw" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "suid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "nosuid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "dev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "nodev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "exec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "noexec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "sync" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
                "async" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "dirsync" => (MsFlags::empty(), MsFlags::MS_DIRSYNC),
                "remount" => (MsFlags::empty(), MsFlags::MS_REMOUNT),
                "mand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
                "nomand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
                "atime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
                "noatime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "diratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "nodiratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                "relatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "norelatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
                "strictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
                "nostrictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
                "bind" => (MsFlags::empty(), MsFlags::MS_BIND),
                "rbind" => (MsFlags::empty(), MsFlags::MS_BIND | MsFlags::MS_REC),
                other => {
                    if let Some(p) = propagation_flags(other) {
                        parsed.propagation |= p;
                    } else {
                        if !parsed.data.is_empty() {
                            parsed.data.push(',');
                        }
                        parsed.data.push_str(other);
                    }
                    continue;
                }
            };
            parsed.flags.remove(clear);
            parsed.flags.insert(set);
        }
        parsed
    }
}

/// Propagation flags for `rootfsPropagation` or a mount option.
pub(crate) fn propagation_flags(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// What kind of mount an entry is.
#[derive(Debug)]
pub(crate) enum MountKind {
    /// A bind mount; `file` when the source is not a directory.
    Bind { file: bool },
    /// The `cgroup` filesystem, laid out like the host's.
    Cgroup(CgroupMount),
    /// Any other filesystem.
    Filesystem { fstype: CString },
}

/// One entry of `spec.mounts`, ready for the child.
#[derive(Debug)]
pub(crate) struct MountPlan {
    /// Absolute path inside the container.
    pub(crate) destination: PathBuf,
    /// Source (host path for binds, device name otherwise).
    pub(crate) source: PathBuf,
    pub(crate) kind: MountKind,
    pub(crate) options: MountOptions,
}

impl MountPlan {
    /// Parses one mount; relative bind sources are relative to the bundle.
    pub(crate) fn from_spec(m: &Mount, bundle: &Path) -> Result<Self, RuntimeError> {
        let destination = m.destination().clone();
        if !destination.is_absolute() {
            return Err(RuntimeError::InvalidSpec(format!(
                "mount destination {} is not absolute",
                destination.display()
            )));
        }
        let options = MountOptions::parse(m.options().as_deref().unwrap_or_default());
        let fstype = m.typ().as_deref().unwrap_or("");
        let mut source = m.source().clone().unwrap_or_else(|| PathBuf::from(fstype));
        let kind = if fstype == "bind" || options.flags.contains(MsFlags::MS_BIND) {
            if source.is_relative() {
                source = bundle.join(source);
            }
            let meta = std::fs::metadata(&source)
                .map_err(|e| RuntimeError::io("bind mount source", &source, e))?;
            MountKind::Bind {
                file: !meta.is_dir(),
            }
        } else if fstype == "cgroup" || fstype == "cgroup2" {
            MountKind::Cgroup(CgroupMount::host_layout()?)
        } else {
            MountKind::Filesystem {
                fstype: CString::new(fstype)
                    .map_err(|_| RuntimeError::InvalidSpec("NUL in mount type".into()))?,
            }
        };
        Ok(MountPlan {
            destination,
            source,
            kind,
            options,
        })
    }

    /// In the child, before pivot_root: mounts this entry under `rootfs`.
    pub(crate) fn mount_under(&self, rootfs: &Path, new_cgroup_ns: bool) -> Result<(), ChildError> {
        let target = resolve_in_root(rootfs, &self.destination);
        let is_file = matches!(self.kind, MountKind::Bind { file: true });
        create_mount_point(&target, is_file)?;
        let data = (!self.options.data.is_empty()).then_some(self.options.data.as_str());
        match &self.kind {
            MountKind::Bind { .. } => {
                let flags = self.options.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
                do_mount(
                    Some(&self.source),
                    &target,
                    None,
                    flags | MsFlags::MS_BIND,
                    None,
                )?;
                // Bind mounts ignore other flags: a remount applies them.
                let extra =
                    self.options.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
                if !extra.is_empty() {
                    remount_bind(&target, extra)?;
                }
            }
            MountKind::Cgroup(cgroup) => {
                cgroup.mount_at(&target, self.options.flags, new_cgroup_ns)?;
            }
            MountKind::Filesystem { fstype } => {
                let fstype = fstype.to_str().unwrap_or("");
                let result = do_mount(
                    Some(&self.source),
                    &target,
                    Some(fstype),
                    self.options.flags,
                    data,
                );
                match result {
                    // sysfs outside a network namespace of our own: bind the host's.
                    Err(_) if fstype == "sysfs" => {
                        do_mount(
                            Some(Path::new("/sys")),
                            &target,
                            None,
                            MsFlags::MS_BIND | MsFlags::MS_REC,
                            None,
                        )?;
                        remount_bind(&target, self.options.flags)?;
                    }
                    other => other?,
                }
            }
        }
        if !self.options.propagation.is_empty() {
            do_mount(None, &target, None, self.options.propagation, None)?;
        }
        Ok(())
    }
}

/// `mount(2)` with an error naming the target.
pub(crate) fn do_mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), ChildError> {
    mount(source, target, fstype, flags, data).map_err(|e| {
        ChildError::Setup(format!(
            "mount {} on {} ({}): {}",
            source.map(|s| s.display().to_string()).unwrap_or_default(),
            target.display(),
            fstype.unwrap_or("bind"),
            e.desc()
        ))
    })
}

/// Remounts a bind mount with `flags` (read-only needs this), keeping the
/// flags the mount has that a bind remount would otherwise try to clear.
pub(crate) fn remount_bind(target: &Path, flags: MsFlags) -> Result<(), ChildError> {
    let mut keep = MsFlags::empty();
    if let Ok(st) = nix::sys::statvfs::statvfs(target) {
        use nix::sys::statvfs::FsFlags;
        let f = st.flags();
        for (fs, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs) {
                keep |= ms;
            }
        }
    }
    let flags = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    do_mount(
        None,
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | keep | flags,
        None,
    )
}

/// Creates the mount point (a directory, or an empty file for file binds).
pub(crate) fn create_mount_point(target: &Path, file: bool) -> Result<(), ChildError> {
    let io = |e: std::io::Error| {
        ChildError::Setup(format!("create mount point {}: {e}", target.display()))
    };
    if file {
        if target.symlink_metadata().is_err() {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(target)
                .map_err(io)?;
        }
        Ok(())
    } else {
        std::fs::create_dir_all(target).map_err(io)
    }
}

/// Joins `path` (absolute, as the container sees it) onto `root`, resolving
/// symlinks as if `root` were `/`, so no link can lead outside it.
pub(crate) fn resolve_in_root(root: &Path, path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new(); // relative to root
    let mut pending: Vec<PathBuf> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(component) = pending.pop() {
        if component.as_os_str().as_bytes() == b".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&component);
        let full = root.join(&candidate);
        match std::fs::read_link(&full) {
            Ok(target) if links < 40 => {
                links += 1;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(PathBuf::from(n)),
                        Component::ParentDir => pending.push(PathBuf::from("..")),
                        _ => {}
                    }
                }
            }
            _ => resolved = candidate,
        }
    }
    root.join(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        let o = MountOptions::parse(&[
            "nosuid".into(),
            "strictatime".into(),
            "mode=755".into(),
            "size=65536k".into(),
            "rprivate".into(),
            "ro".into(),
        ]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME | MsFlags::MS_RDONLY
        );
        assert_eq!(o.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = MountOptions::parse(&["rbind".into(), "ro".into(), "rw".into()]);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
    }

    #[test]
    fn resolves_symlinks_inside_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("real/dir")).unwrap();
        std::os::unix::fs::symlink("/real", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../real/dir", r.join("real/up")).unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("/abs/dir/x")),
            r.join("real/dir/x")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("/real/up/y")),
            r.join("real/dir/y")
        );
        assert_eq!(resolve_in_root(r, Path::new("/../../etc")), r.join("etc"));
    }
}
