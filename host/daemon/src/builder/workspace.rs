//! Where a build's context is unpacked: a temporary directory under the data root, with
//! a private tmpfs mounted on it when the context is small enough. A context is read
//! once and thrown away, so memory spares the disk the writes (and later `fsync`s the
//! cost of flushing them); large contexts stay on disk.

use std::io::{Seek, SeekFrom};
use std::path::Path;

use vmrun_builder::{BuildFileError, ContextDir};

/// Contexts up to this many bytes (as sent) are unpacked in memory.
const TMPFS_LIMIT: u64 = 512 * 1024 * 1024;

/// An unpacked build context; unmounted and removed on drop.
pub struct ContextSpace {
    dir: tempfile::TempDir,
    tmpfs: bool,
}

/// Why a context could not be unpacked.
pub enum ContextError {
    /// The daemon could not make room for it.
    Internal(String),
    /// The body is not a usable context.
    BadContext(BuildFileError),
}

impl ContextSpace {
    /// Unpacks the context tar in `spool` (`size` bytes) under `tmp`.
    pub fn unpack(
        tmp: &Path,
        mut spool: std::fs::File,
        size: u64,
    ) -> Result<ContextSpace, ContextError> {
        std::fs::create_dir_all(tmp)
            .map_err(|e| ContextError::Internal(format!("creating {}: {e}", tmp.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(tmp)
            .map_err(|e| ContextError::Internal(format!("creating a context directory: {e}")))?;
        let tmpfs = size <= TMPFS_LIMIT && mount_tmpfs(dir.path(), size);
        let mut space = ContextSpace { dir, tmpfs };
        match ContextDir::unpack(&mut spool, space.dir.path()) {
            Ok(_) => Ok(space),
            Err(e) if space.tmpfs => {
                // Perhaps the tmpfs was too small: once more on disk.
                tracing::debug!(error = %e, "unpacking the context in memory failed; on disk now");
                let _ = nix::mount::umount2(space.dir.path(), nix::mount::MntFlags::MNT_DETACH);
                space.tmpfs = false;
                spool
                    .seek(SeekFrom::Start(0))
                    .map_err(|e| ContextError::Internal(format!("rereading the context: {e}")))?;
                ContextDir::unpack(&mut spool, space.dir.path())
                    .map_err(ContextError::BadContext)?;
                Ok(space)
            }
            Err(e) => Err(ContextError::BadContext(e)),
        }
    }

    /// The unpacked context.
    pub fn context(&self) -> ContextDir {
        ContextDir::open(self.dir.path())
    }
}

/// Mounts a tmpfs sized for a context of `size` bytes (unpacked files take more room
/// than the tar: each takes at least a page); false when it cannot.
fn mount_tmpfs(dir: &Path, size: u64) -> bool {
    let limit = size.saturating_mul(4).max(64 * 1024 * 1024);
    let data = format!("size={limit},mode=0700");
    match nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(data.as_str()),
    ) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "no tmpfs for the build context; unpacking on disk");
            false
        }
    }
}

impl Drop for ContextSpace {
    fn drop(&mut self) {
        if self.tmpfs {
            let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// The directory builds work in (contexts, step mounts) under the data root.
pub fn build_tmp(data_root: &Path) -> std::path::PathBuf {
    data_root.join("tmp").join("build")
}

/// Removes what builds of an earlier daemon left (it stopped mid-build): every mount
/// under [`build_tmp`], deepest first, then the directory.
pub fn remove_leftovers(data_root: &Path) {
    let dir = build_tmp(data_root);
    if !dir.exists() {
        return;
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<std::path::PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(std::path::PathBuf::from)
        .filter(|m| m.starts_with(&dir))
        .collect();
    mounts.sort();
    for m in mounts.iter().rev() {
        if let Err(e) = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(mount = %m.display(), error = %e, "unmounting a build's leftover");
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "removing builds' leftovers");
    }
}
