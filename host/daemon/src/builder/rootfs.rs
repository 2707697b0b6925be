//! A build step's view of an image's file system, mounted on the host, and the
//! directory its changes go to (the step's layer, in the form `docker commit` stores).
//!
//! Two kinds: [`Rootfs::staged`] mounts the image read-only and the step writes its
//! files into a separate staging directory (COPY, WORKDIR: no overlay upper, so no
//! copy-up and no sync of the host file system at unmount); [`Rootfs::writable`] mounts
//! the image under a writable upper directory that the step writes through (ADD of an
//! archive, whose entries must follow the image's symlinks).

use std::fs;
use std::path::{Path, PathBuf};

use vmrun_builder::dockerignore::clean;

use crate::engine::EngineError;

/// A mounted image and where a step's changes go; unmounted and deleted on drop.
pub struct Rootfs {
    /// Held for its removal on drop (after the unmount in `Drop`).
    _dir: tempfile::TempDir,
    merged: PathBuf,
    /// The staging directory (staged), or the merged view itself (writable).
    out: PathBuf,
    /// What becomes the layer: the staging directory or the overlay's upper directory.
    layer: PathBuf,
    mounted: bool,
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> EngineError {
    move |e| EngineError::internal(format!("{what}: {e}"))
}

impl Rootfs {
    fn prepare(tmp: &Path, names: &[&str]) -> Result<tempfile::TempDir, EngineError> {
        fs::create_dir_all(tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("step-")
            .tempdir_in(tmp)
            .map_err(io_err(format!("creating a directory in {}", tmp.display())))?;
        for name in names {
            let d = dir.path().join(name);
            fs::create_dir(&d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        Ok(dir)
    }

    /// overlayfs lists lower directories top-most first; an empty one at the bottom lets
    /// `scratch` (no layers) and one-layer images mount too.
    fn lowers(dir: &Path, layers: &[PathBuf]) -> Vec<PathBuf> {
        let mut lowers: Vec<PathBuf> = layers.iter().rev().cloned().collect();
        lowers.push(dir.join("empty"));
        if lowers.len() < 2 {
            lowers.push(dir.join("empty2"));
        }
        lowers
    }

    /// Mounts `layers` (bottom-most first, as `Image::layer_dirs` lists them) read-only,
    /// with an empty staging directory for the step's files.
    pub fn staged(tmp: &Path, layers: &[PathBuf]) -> Result<Rootfs, EngineError> {
        let dir = Rootfs::prepare(tmp, &["out", "merged", "empty", "empty2"])?;
        let merged = dir.path().join("merged");
        let lowers = Rootfs::lowers(dir.path(), layers);
        vmrun_runtime::mount_overlay_read_only(&lowers, &merged).map_err(|e| {
            EngineError::internal(format!("mounting the image for a build step: {e}"))
        })?;
        let out = dir.path().join("out");
        Ok(Rootfs {
            layer: out.clone(),
            out,
            merged,
            _dir: dir,
            mounted: true,
        })
    }

    /// Mounts `layers` under a new writable upper directory, written through.
    pub fn writable(tmp: &Path, layers: &[PathBuf]) -> Result<Rootfs, EngineError> {
        let dir = Rootfs::prepare(tmp, &["upper", "work", "merged", "empty", "empty2"])?;
        let (upper, work, merged) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("merged"),
        );
        let lowers = Rootfs::lowers(dir.path(), layers);
        vmrun_runtime::mount_overlay(&lowers, &upper, &work, &merged).map_err(|e| {
            EngineError::internal(format!("mounting the image for a build step: {e}"))
        })?;
        Ok(Rootfs {
            out: merged.clone(),
            layer: upper,
            merged,
            _dir: dir,
            mounted: true,
        })
    }

    /// The image's files as the step sees them.
    pub fn path(&self) -> &Path {
        &self.merged
    }

    /// Where the step writes.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Unmounts, leaving the step's changes in overlayfs layer form to commit.
    pub fn finish(&mut self) -> Result<PathBuf, EngineError> {
        if self.mounted {
            vmrun_runtime::unmount(&self.merged).map_err(|e| {
                EngineError::internal(format!("unmounting a build step's file system: {e}"))
            })?;
            self.mounted = false;
        }
        Ok(self.layer.clone())
    }

    /// The host path of `path` (absolute in the image) with every symlink on the way
    /// followed inside the image's root, never outside it (docker's
    /// `FollowSymlinkInScope`). The last component is followed too when `follow_last`.
    pub fn resolve(&self, path: &str, follow_last: bool) -> PathBuf {
        in_scope(&self.merged, path, follow_last)
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        // Unmounted before `dir` (a field, dropped after this) removes the directory.
        if self.mounted {
            let _ = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// `path` under `root`, symlinks followed inside `root`.
pub fn in_scope(root: &Path, path: &str, follow_last: bool) -> PathBuf {
    let mut pending: Vec<String> = clean(path)
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .rev()
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        done.push(part);
        let is_last = pending.is_empty();
        if is_last && !follow_last {
            break;
        }
        let here = root.join(done.join("/"));
        let Ok(target) = fs::read_link(&here) else {
            continue;
        };
        links += 1;
        if links > 40 {
            break;
        }
        done.pop();
        let target = target.to_string_lossy().into_owned();
        let joined = if target.starts_with('/') {
            clean(&target)
        } else {
            clean(&format!("/{}/{}", done.join("/"), target))
        };
        done.clear();
        pending.extend(
            joined
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .rev(),
        );
    }
    root.join(done.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("real/dir")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("../../../../etc", root.join("real/up")).unwrap();
        assert_eq!(in_scope(root, "/abs/dir", true), root.join("real/dir"));
        assert_eq!(
            in_scope(root, "/real/up/passwd", true),
            root.join("etc/passwd")
        );
        assert_eq!(in_scope(root, "/../../x", true), root.join("x"));
        assert_eq!(in_scope(root, "/abs", false), root.join("abs"));
    }
}
