//! A new volume starts with what the image has at its mount point, as with dockerd: when
//! a container mounts an empty volume (named or anonymous, unless `nocopy`) over a
//! directory of its image, that directory's content is copied into the volume once,
//! owners and modes kept, so a `VOLUME /var/lib/app` of an image or `-v data:/etc/app`
//! shows the image's files instead of an empty directory. The daemon fills volumes that
//! are host directories; the guest agent fills the shared VM's, on its data disk.
//!
//! The image's view of the path comes from its layers: a single layer is read directly;
//! several are merged by a read-only overlayfs mount of them (whiteouts and opaque
//! directories then apply), made for the copy and undone right after.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// Copies what the image of `layers` (bottom first) has at `destination` into the volume
/// directory `volume` if the volume is empty; `scratch` is a directory for the temporary
/// mount. Returns whether anything was copied. A path that is not a directory in the image,
/// or that passes through a symlink there, leaves the volume as it is.
pub fn fill_from_image(
    layers: &[PathBuf],
    destination: &str,
    volume: &Path,
    scratch: &Path,
) -> Result<bool, Error> {
    let failed = |what: String, e: &dyn std::fmt::Display| {
        Error::Failed(format!("filling volume {}: {what}: {e}", volume.display()))
    };
    let empty = std::fs::read_dir(volume)
        .map_err(|e| failed("reading it".into(), &e))?
        .next()
        .is_none();
    if !empty || layers.is_empty() {
        return Ok(false);
    }
    let Some(relative) = plain_relative(destination) else {
        return Ok(false);
    };
    let merged = ImageView::open(layers, scratch).map_err(|e| failed("the image".into(), &e))?;
    let Some(source) = directory_in(merged.root(), &relative) else {
        return Ok(false);
    };
    copy_tree(&source, volume).map_err(|e| failed(format!("copying {destination}"), &e))?;
    Ok(true)
}

/// `/a/b` as `a/b`; `None` for `/` or a path with `..`.
fn plain_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// `root/relative` when every component is a real directory (no symlink on the way).
fn directory_in(root: &Path, relative: &Path) -> Option<PathBuf> {
    let mut at = root.to_path_buf();
    for c in relative.components() {
        at.push(c);
        let meta = std::fs::symlink_metadata(&at).ok()?;
        if !meta.is_dir() {
            return None;
        }
    }
    Some(at)
}

/// The merged file tree of an image's layers, for as long as it lives.
struct ImageView {
    root: PathBuf,
    mounted: bool,
}

impl ImageView {
    fn open(layers: &[PathBuf], scratch: &Path) -> std::io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        if let [only] = layers {
            return Ok(ImageView {
                root: only.clone(),
                mounted: false,
            });
        }
        // overlayfs lists lower directories top-most first.
        let lowers: Vec<PathBuf> = layers.iter().rev().cloned().collect();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root = scratch.join(format!("volume-fill-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&root)?;
        if let Err(e) = vmrun_runtime::mount_overlay_read_only(&lowers, &root) {
            let _ = std::fs::remove_dir(&root);
            return Err(std::io::Error::other(e.to_string()));
        }
        Ok(ImageView {
            root,
            mounted: true,
        })
    }

    fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for ImageView {
    fn drop(&mut self) {
        if self.mounted {
            let _ = vmrun_runtime::unmount(&self.root);
            let _ = std::fs::remove_dir(&self.root);
        }
    }
}

/// Copies the content of directory `from` into directory `to`: directories, regular
/// files, symlinks (as links) and fifos, with modes and owners; the top directory's own
/// mode and owner too. Sockets and devices are left out.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let top = std::fs::symlink_metadata(from)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&src)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if std::os::unix::fs::FileTypeExt::is_fifo(&kind) {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &dst,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_bits_truncate(0o600),
                0,
            )?;
        } else {
            continue;
        }
        keep_owner_and_mode(&dst, &meta)?;
    }
    keep_owner_and_mode(to, &top)
}

fn keep_owner_and_mode(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))?;
    if !meta.file_type().is_symlink() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_plain() {
        assert_eq!(
            plain_relative("/var/lib/x"),
            Some(PathBuf::from("var/lib/x"))
        );
        assert_eq!(plain_relative("/"), None);
        assert_eq!(plain_relative("/a/../b"), None);
    }

    #[test]
    fn a_single_layers_directory_is_copied_once_and_symlinks_stop_it() {
        let tmp = std::env::temp_dir().join(format!("vmrun-fill-{}", std::process::id()));
        let layer = tmp.join("layer");
        std::fs::create_dir_all(layer.join("app/sub")).unwrap();
        std::fs::write(layer.join("app/a.txt"), "a").unwrap();
        std::fs::write(layer.join("app/sub/b.txt"), "b").unwrap();
        std::fs::set_permissions(
            layer.join("app/sub"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::os::unix::fs::symlink("a.txt", layer.join("app/link")).unwrap();
        std::os::unix::fs::symlink("app", layer.join("via-link")).unwrap();
        let volume = tmp.join("volume");
        std::fs::create_dir_all(&volume).unwrap();
        let layers = [layer.clone()];
        assert!(fill_from_image(&layers, "/app", &volume, &tmp).unwrap());
        assert_eq!(
            std::fs::read_to_string(volume.join("sub/b.txt")).unwrap(),
            "b"
        );
        assert_eq!(
            std::fs::read_link(volume.join("link")).unwrap(),
            Path::new("a.txt")
        );
        let mode = std::fs::metadata(volume.join("sub")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o750);
        // Not empty any more: a second mount copies nothing.
        std::fs::remove_file(volume.join("a.txt")).unwrap();
        assert!(!fill_from_image(&layers, "/app", &volume, &tmp).unwrap());
        assert!(!volume.join("a.txt").exists());
        // Through a symlink, or not a directory: nothing.
        let other = tmp.join("other");
        std::fs::create_dir_all(&other).unwrap();
        assert!(!fill_from_image(&layers, "/via-link", &other, &tmp).unwrap());
        assert!(!fill_from_image(&layers, "/app/a.txt", &other, &tmp).unwrap());
        assert!(!fill_from_image(&layers, "/missing", &other, &tmp).unwrap());
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn several_layers_are_merged_with_whiteouts_opaque_dirs_owners_and_fifos() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: overlayfs mounts, whiteouts and chown need root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = (tmp.path().join("l1"), tmp.path().join("l2"));
        std::fs::create_dir_all(lower.join("app/d")).unwrap();
        std::fs::write(lower.join("app/a"), "a").unwrap();
        std::fs::write(lower.join("app/gone"), "x").unwrap();
        std::fs::write(lower.join("app/d/old"), "x").unwrap();
        std::os::unix::fs::lchown(lower.join("app/a"), Some(1000), Some(1001)).unwrap();
        std::fs::create_dir_all(upper.join("app/d")).unwrap();
        std::fs::write(upper.join("app/d/new"), "n").unwrap();
        // A whiteout hides `gone`; `d` is opaque: `old` is hidden under it.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("app/gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        rustix::fs::setxattr(
            upper.join("app/d"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("app/pipe"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_bits_truncate(0o640),
            0,
        )
        .unwrap();
        let volume = tmp.path().join("volume");
        std::fs::create_dir(&volume).unwrap();
        let layers = [lower, upper];
        assert!(fill_from_image(&layers, "/app/", &volume, tmp.path()).unwrap());
        let mut names: Vec<String> = walk(&volume);
        names.sort();
        assert_eq!(names, ["a", "d", "d/new", "pipe"]);
        let a = std::fs::metadata(volume.join("a")).unwrap();
        assert_eq!((a.uid(), a.gid()), (1000, 1001));
        let pipe = std::fs::symlink_metadata(volume.join("pipe")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&pipe.file_type()));
        assert_eq!(pipe.mode() & 0o777, 0o640);
        // The merged view was unmounted and its directory removed.
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("volume-fill-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// Every path under `dir`, relative to it.
    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()).into_iter().map(|n| format!("{name}/{n}")));
            }
            out.push(name);
        }
        out
    }
}
