//! A stopped container's volumes and binds mounted over its root for one operation, as
//! dockerd mounts them for `docker cp` of a stopped container: parents before what is
//! mounted inside them, each mount point resolved inside the root
//! ([`Root::follow_in_scope`]), created there if missing, and mounted on through
//! `/proc/self/fd/<n>` of a descriptor opened inside the root, so a symlink in the
//! container cannot send a bind elsewhere. [`Binds`] unmounts them, newest first.

use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags, MsFlags};
use rustix::fs::{Mode, OFlags};

use crate::{Error, Root};

/// One volume or bind: directory (or file) `source` at `destination` in the container.
#[derive(Debug, Clone, Copy)]
pub struct Bind<'a> {
    /// What is mounted (a path outside the root).
    pub source: &'a Path,
    /// Absolute path in the container.
    pub destination: &'a str,
    /// Bound read-only.
    pub read_only: bool,
}

/// The mounts made by [`mount`]; unmounted, newest first, when dropped.
#[derive(Debug, Default)]
pub struct Binds {
    mounted: Vec<PathBuf>,
}

impl Drop for Binds {
    fn drop(&mut self) {
        for b in self.mounted.iter().rev() {
            if let Err(e) = umount2(b, MntFlags::MNT_DETACH) {
                tracing::warn!("unmounting {}: {e}", b.display());
            }
        }
    }
}

/// Mounts `binds` inside `root`, which is directory `root_dir`; on an error the ones
/// already made are unmounted.
pub fn mount(root: &Root, root_dir: &Path, binds: &[Bind<'_>]) -> Result<Binds, Error> {
    let mut ordered: Vec<&Bind<'_>> = binds.iter().collect();
    ordered.sort_by_key(|b| b.destination.split('/').filter(|p| !p.is_empty()).count());
    let mut made = Binds::default();
    for b in ordered {
        let at = bind(root, b)?;
        made.mounted.push(root_dir.join(at.trim_start_matches('/')));
    }
    Ok(made)
}

/// Bind-mounts `b` at its destination inside `root`; returns where (inside the root).
fn bind(root: &Root, b: &Bind<'_>) -> Result<String, Error> {
    let what = format!("mounting {} at {}", b.source.display(), b.destination);
    let failed = |e: std::io::Error| Error::Failed(format!("{what}: {e}"));
    let dest = root
        .follow_in_scope(b.destination.as_bytes())
        .map_err(failed)?;
    if root.open_at(&dest, OFlags::PATH).is_err() {
        make_mount_point(root, &dest, b.source.is_dir()).map_err(failed)?;
    }
    let fd = root.open_at(&dest, OFlags::PATH).map_err(failed)?;
    let target = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::mount::mount(
        Some(b.source),
        target.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| failed(e.into()))?;
    if b.read_only {
        // The new mount is now what the path names; reopen it to reach the mount.
        let fd = root.open_at(&dest, OFlags::PATH).map_err(failed)?;
        let target = format!("/proc/self/fd/{}", fd.as_raw_fd());
        nix::mount::mount(
            None::<&str>,
            target.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| Error::Failed(format!("{what} read-only: {e}")))?;
    }
    Ok(String::from_utf8_lossy(&dest).into_owned())
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
        let name = OsStr::from_bytes(part);
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
