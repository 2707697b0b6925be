//! A build step's view of an image's file system: the image's layers under a fresh
//! overlayfs upper directory, mounted on the host. COPY/ADD and WORKDIR write into it;
//! the upper directory is then the step's layer (the same form `docker commit` stores).

use std::fs;
use std::path::{Path, PathBuf};

use vmrun_builder::dockerignore::clean;

use crate::engine::EngineError;

/// A mounted overlay of an image, removed (unmounted and deleted) on drop.
pub struct Rootfs {
    dir: tempfile::TempDir,
    merged: PathBuf,
    mounted: bool,
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> EngineError {
    move |e| EngineError::internal(format!("{what}: {e}"))
}

impl Rootfs {
    /// Mounts `layers` (bottom-most first, as `Image::layer_dirs` lists them) under a new
    /// writable upper directory in a temporary directory under `tmp`.
    pub fn mount(tmp: &Path, layers: &[PathBuf]) -> Result<Rootfs, EngineError> {
        fs::create_dir_all(tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("step-")
            .tempdir_in(tmp)
            .map_err(io_err(format!("creating a directory in {}", tmp.display())))?;
        let (upper, work, merged, empty) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("merged"),
            dir.path().join("empty"),
        );
        for d in [&upper, &work, &merged, &empty] {
            fs::create_dir(d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        // overlayfs lists lower directories top-most first; an empty one at the bottom
        // lets `scratch` (no layers) mount too.
        let mut lowers: Vec<PathBuf> = layers.iter().rev().cloned().collect();
        lowers.push(empty);
        vmrun_runtime::mount_overlay(&lowers, &upper, &work, &merged).map_err(|e| {
            EngineError::internal(format!("mounting the image for a build step: {e}"))
        })?;
        Ok(Rootfs {
            dir,
            merged,
            mounted: true,
        })
    }

    /// The merged view.
    pub fn path(&self) -> &Path {
        &self.merged
    }

    /// Unmounts, leaving the upper directory (the step's changes) to commit.
    pub fn finish(&mut self) -> Result<PathBuf, EngineError> {
        if self.mounted {
            vmrun_runtime::unmount(&self.merged).map_err(|e| {
                EngineError::internal(format!("unmounting a build step's file system: {e}"))
            })?;
            self.mounted = false;
        }
        Ok(self.dir.path().join("upper"))
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
