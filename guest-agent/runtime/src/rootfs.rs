//! The container's root filesystem: mounts, devices, `pivot_root`, masked
//! and read-only paths, sysctls.
//!
//! Planned in the parent ([`RootfsPlan::from_spec`]), carried out in the
//! child in three steps: [`RootfsPlan::prepare`] (everything under the
//! rootfs, host paths still visible), [`pivot`], [`RootfsPlan::finish`].

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::mount::{umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, fchdir, pivot_root};
use oci_spec::runtime::Spec;

use crate::devices::{self, DevicePlan};
use crate::error::{ChildError, RuntimeError};
use crate::mounts::{do_mount, propagation_flags, remount_bind, MountPlan};

/// Everything the child needs to set up the root filesystem.
#[derive(Debug)]
pub(crate) struct RootfsPlan {
    /// Absolute host path of the rootfs.
    pub(crate) rootfs: PathBuf,
    readonly: bool,
    propagation: MsFlags,
    mounts: Vec<MountPlan>,
    devices: Vec<DevicePlan>,
    masked: Vec<PathBuf>,
    readonly_paths: Vec<PathBuf>,
    sysctls: Vec<(PathBuf, String)>,
    new_cgroup_ns: bool,
}

impl RootfsPlan {
    pub(crate) fn from_spec(
        spec: &Spec,
        bundle: &Path,
        new_cgroup_ns: bool,
    ) -> Result<Self, RuntimeError> {
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| RuntimeError::InvalidSpec("root is missing".into()))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            bundle.join(root.path())
        };
        let rootfs = rootfs
            .canonicalize()
            .map_err(|e| RuntimeError::io("rootfs", &rootfs, e))?;
        let linux = spec.linux().as_ref();
        let propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
            None | Some("") => MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            Some(name) => propagation_flags(name).ok_or_else(|| {
                RuntimeError::InvalidSpec(format!("unknown rootfsPropagation {name:?}"))
            })?,
        };
        let mounts = spec
            .mounts()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|m| MountPlan::from_spec(m, bundle))
            .collect::<Result<_, _>>()?;
        let paths = |v: Option<&Vec<String>>| -> Vec<PathBuf> {
            v.map(|v| v.iter().map(PathBuf::from).collect())
                .unwrap_or_default()
        };
        let mut sysctls: Vec<(PathBuf, String)> = linux
            .and_then(|l| l.sysctl().as_ref())
            .map(|s| {
                s.iter()
                    .map(|(k, v)| (Path::new("/proc/sys").join(k.replace('.', "/")), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        sysctls.sort();
        Ok(RootfsPlan {
            rootfs,
            readonly: root.readonly().unwrap_or(false),
            propagation,
            mounts,
            devices: devices::plan(
                linux
                    .and_then(|l| l.devices().as_deref())
                    .unwrap_or_default(),
            ),
            masked: paths(linux.and_then(|l| l.masked_paths().as_ref())),
            readonly_paths: paths(linux.and_then(|l| l.readonly_paths().as_ref())),
            sysctls,
            new_cgroup_ns,
        })
    }

    /// Child, in its new mount namespace: propagation, the rootfs bind,
    /// `spec.mounts`, devices, links. `in_cgroup` is called before
    /// the first cgroup mount (which needs the child in its cgroup).
    pub(crate) fn prepare(
        &self,
        in_cgroup: &mut dyn FnMut() -> Result<(), ChildError>,
    ) -> Result<(), ChildError> {
        do_mount(None, Path::new("/"), None, self.propagation, None)?;
        // pivot_root needs the new root to be a mount point.
        do_mount(
            Some(&self.rootfs),
            &self.rootfs,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        for m in &self.mounts {
            if matches!(m.kind, crate::mounts::MountKind::Cgroup(_)) {
                in_cgroup()?;
            }
            m.mount_under(&self.rootfs, self.new_cgroup_ns)?;
        }
        devices::create_devices(&self.rootfs, &self.devices)?;
        devices::create_links(&self.rootfs)
    }

    /// Child, after pivot_root: sysctls, masked and read-only paths, and a
    /// read-only root.
    pub(crate) fn finish(&self) -> Result<(), ChildError> {
        for (path, value) in &self.sysctls {
            std::fs::write(path, value.as_bytes())
                .map_err(|e| ChildError::Setup(format!("sysctl {}: {e}", path.display())))?;
        }
        for path in &self.masked {
            mask_path(path)?;
        }
        for path in &self.readonly_paths {
            readonly_path(path)?;
        }
        if self.readonly {
            remount_bind(Path::new("/"), MsFlags::MS_RDONLY)?;
        }
        Ok(())
    }
}

fn open_dir(path: &Path) -> Result<OwnedFd, ChildError> {
    let fd = open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ChildError::Setup(format!("open {}: {}", path.display(), e.desc())))?;
    // SAFETY: open returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Child: makes `rootfs` the root, with runc's `pivot_root(".", ".")` trick
/// (no directory for the old root needed), then detaches the old root.
pub(crate) fn pivot(rootfs: &Path) -> Result<(), ChildError> {
    let old_root = open_dir(Path::new("/"))?;
    let new_root = open_dir(rootfs)?;
    let step = |what: &'static str| move |e: nix::Error| ChildError::sys(what, e);
    fchdir(new_root.as_raw_fd()).map_err(step("chdir to rootfs"))?;
    pivot_root(".", ".").map_err(step("pivot_root"))?;
    // The old root is now stacked under the new one; "." still refers to it
    // via old_root. Keep unmount events from reaching the host, then detach.
    fchdir(old_root.as_raw_fd()).map_err(step("chdir to old root"))?;
    do_mount(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step("unmount old root"))?;
    chdir("/").map_err(step("chdir /"))?;
    Ok(())
}

fn mask_path(path: &Path) -> Result<(), ChildError> {
    let result = match std::fs::metadata(path) {
        Err(_) => return Ok(()),
        Ok(meta) if meta.is_dir() => do_mount(
            Some(Path::new("tmpfs")),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None,
        ),
        Ok(_) => do_mount(
            Some(Path::new("/dev/null")),
            path,
            None,
            MsFlags::MS_BIND,
            None,
        ),
    };
    result
}

fn readonly_path(path: &Path) -> Result<(), ChildError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    do_mount(
        Some(path),
        path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    remount_bind(path, MsFlags::MS_RDONLY | MsFlags::MS_REC)
}
