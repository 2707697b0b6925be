//! A stopped native container's files, mounted for one operation (`docker cp`,
//! `docker export`): its overlay at its rootfs directory and, for `docker cp`, its
//! volumes and binds at their places inside it, as dockerd mounts them for a stopped
//! container. Everything is unmounted when the [`Mounted`] guard goes.
//!
//! A mount point is resolved inside the container's root ([`Root::follow_in_scope`]),
//! created there if missing, and mounted on through `/proc/self/fd/<n>` of a descriptor
//! opened inside the root, so a symlink in the container cannot send a bind elsewhere.

use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::mount::{umount2, MntFlags, MsFlags};
use rustix::fs::{Mode, OFlags};

use super::files::ContainerPaths;
use crate::backend::{BackendError, ContainerSpec, MountSpec};
use vmrun_containerfs::Root;

/// What was mounted; unmounted (binds first, newest first) on drop.
pub struct Mounted {
    overlay: PathBuf,
    binds: Vec<PathBuf>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for b in self.binds.iter().rev() {
            if let Err(e) = umount2(b, MntFlags::MNT_DETACH) {
                tracing::warn!("unmounting {}: {e}", b.display());
            }
        }
        if let Err(e) = vmrun_runtime::unmount(&self.overlay) {
            tracing::warn!("unmounting {}: {e}", self.overlay.display());
        }
    }
}

fn failed(what: String) -> impl Fn(std::io::Error) -> BackendError {
    move |e| BackendError::Failed(format!("{what}: {e}"))
}

/// Mounts the stopped container's overlay at its rootfs directory and, with `volumes`,
/// its binds and volumes inside it; returns the root and the guard.
pub fn mount(
    paths: &ContainerPaths,
    c: &ContainerSpec,
    volumes: bool,
) -> Result<(Root, Mounted), BackendError> {
    for d in [&paths.diff, &paths.work, &paths.rootfs] {
        std::fs::create_dir_all(d).map_err(failed("preparing the container's files".into()))?;
    }
    let lowers: Vec<PathBuf> = c.layers.iter().rev().cloned().collect();
    vmrun_runtime::mount_overlay(&lowers, &paths.diff, &paths.work, &paths.rootfs)
        .map_err(|e| BackendError::Failed(format!("mounting the container's files: {e}")))?;
    let mut mounted = Mounted {
        overlay: paths.rootfs.clone(),
        binds: Vec::new(),
    };
    let root = Root::open(&paths.rootfs).map_err(failed("opening the container's files".into()))?;
    if volumes {
        let mut binds: Vec<&MountSpec> = c.mounts.iter().collect();
        // Parents before what is mounted inside them.
        binds.sort_by_key(|m| m.destination.split('/').filter(|p| !p.is_empty()).count());
        for m in binds {
            let at = bind(&root, m)?;
            mounted
                .binds
                .push(paths.rootfs.join(at.trim_start_matches('/')));
        }
    }
    Ok((root, mounted))
}

/// Bind-mounts `m` at its destination inside `root`; returns where (inside the root).
fn bind(root: &Root, m: &MountSpec) -> Result<String, BackendError> {
    let what = format!("mounting {} at {}", m.source.display(), m.destination);
    let dest = root
        .follow_in_scope(m.destination.as_bytes())
        .map_err(failed(what.clone()))?;
    let is_dir = m.source.is_dir();
    if root.open_at(&dest, OFlags::PATH).is_err() {
        make_mount_point(root, &dest, is_dir).map_err(failed(what.clone()))?;
    }
    let fd = root
        .open_at(&dest, OFlags::PATH)
        .map_err(failed(what.clone()))?;
    let target = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::mount::mount(
        Some(&m.source),
        target.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| BackendError::Failed(format!("{what}: {e}")))?;
    let dest = String::from_utf8_lossy(&dest).into_owned();
    if m.read_only {
        // The new mount is now what the descriptor's path names; reopen it.
        let fd = root
            .open_at(dest.as_bytes(), OFlags::PATH)
            .map_err(failed(what.clone()))?;
        let target = format!("/proc/self/fd/{}", fd.as_raw_fd());
        nix::mount::mount(
            None::<&str>,
            target.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| BackendError::Failed(format!("{what} read-only: {e}")))?;
    }
    Ok(dest)
}

/// Creates `path` inside `root` (a directory, or an empty file for a file bind), with
/// its missing parents.
fn make_mount_point(root: &Root, path: &[u8], dir: bool) -> std::io::Result<()> {
    let parts: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    let mut at = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let parent = root.open_dir(if at.is_empty() { b"/" } else { &at })?;
        let last = i + 1 == parts.len();
        let name = std::ffi::OsStr::from_bytes(part);
        let made = if last && !dir {
            rustix::fs::openat(
                &parent,
                name,
                OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map(drop)
        } else {
            rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755))
        };
        match made {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        at.push(b'/');
        at.extend_from_slice(part);
    }
    Ok(())
}
