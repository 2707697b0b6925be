//! `docker diff`: a container's overlayfs upper directory (natively its own, a copy for a
//! container in a VM) compared with
//! the image's layers, as dockerd's `archive.OverlayChanges` does it.
//!
//! A whiteout (a 0:0 character device) is a deletion; an opaque directory
//! (`trusted.overlay.opaque=y`) that hides a lower directory is a change, with the lower
//! directory's entries it hides deleted (as dockerd's naive diff of the two trees shows
//! it); anything else is a change when a lower layer has the path and an addition
//! otherwise, except directories whose size, mode and time match the lower one (only a
//! parent of a change). The parent of an addition or deletion is reported changed once.
//! The mount points the runtime creates (`/etc/hosts` and the like, in dockerd's init
//! layer) are not changes, nor is a directory changed only by them. Sorted by path.

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::backend::{Change, ChangeKind};

/// The changes of upper directory `upper` over `layers` (bottom-most first), in path order.
pub fn changes(upper: &Path, layers: &[PathBuf]) -> std::io::Result<Vec<Change>> {
    let mut walk = Walk {
        upper,
        layers,
        out: Vec::new(),
        changed_dirs: HashSet::new(),
    };
    match std::fs::symlink_metadata(upper) {
        Ok(_) => walk.dir("")?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    walk.out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(walk.out)
}

/// What the runtime creates in the writable layer for its mounts (dockerd keeps these
/// in the container's init layer, so they are never changes there).
const INIT_PATHS: [&str; 10] = [
    "/.dockerenv",
    "/dev",
    "/dev/console",
    "/dev/pts",
    "/dev/shm",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/mtab",
    "/etc/resolv.conf",
    "/proc",
];

struct Walk<'a> {
    upper: &'a Path,
    layers: &'a [PathBuf],
    out: Vec<Change>,
    changed_dirs: HashSet<String>,
}

impl Walk<'_> {
    fn dir(&mut self, rel: &str) -> std::io::Result<()> {
        let mut names: Vec<String> =
            std::fs::read_dir(self.upper.join(rel.trim_start_matches('/')))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
        names.sort();
        for name in names {
            let path = format!("{rel}/{name}");
            let host = self.upper.join(path.trim_start_matches('/'));
            let meta = match std::fs::symlink_metadata(&host) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
            let lower = self.in_lower(&path);
            if lower.is_none() && INIT_PATHS.contains(&path.as_str()) {
                continue;
            }
            let hides_lower =
                meta.is_dir() && is_opaque(&host) && lower.as_ref().is_some_and(|l| l.is_dir());
            let kind = if whiteout {
                Some(ChangeKind::Deleted)
            } else {
                match lower {
                    None => Some(ChangeKind::Added),
                    Some(_) if hides_lower => Some(ChangeKind::Modified),
                    Some(lower)
                        if lower.is_dir()
                            && meta.is_dir()
                            && (same_dir(&lower, &meta)
                                || self.only_init(&path, &lower, &meta)) =>
                    {
                        None
                    }
                    Some(_) => Some(ChangeKind::Modified),
                }
            };
            if let Some(kind) = kind {
                if meta.is_dir() {
                    self.changed_dirs.insert(path.clone());
                }
                if matches!(kind, ChangeKind::Added | ChangeKind::Deleted) {
                    let parent = rel.to_string();
                    if !parent.is_empty() && self.changed_dirs.insert(parent.clone()) {
                        self.out.push(Change {
                            path: parent,
                            kind: ChangeKind::Modified,
                        });
                    }
                }
                self.out.push(Change {
                    path: path.clone(),
                    kind,
                });
            }
            if hides_lower {
                self.hidden(&path)?;
            }
            if meta.is_dir() && !whiteout {
                self.dir(&path)?;
            }
        }
        Ok(())
    }

    /// Deletions of what the lower layers have in `path`, an opaque directory, that its
    /// upper directory has not.
    fn hidden(&mut self, path: &str) -> std::io::Result<()> {
        let rel = path.trim_start_matches('/');
        let mut names = std::collections::BTreeSet::new();
        for layer in self.layers {
            let Ok(entries) = std::fs::read_dir(layer.join(rel)) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let whiteout = e
                    .metadata()
                    .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0);
                if !whiteout {
                    names.insert(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        for name in names {
            if std::fs::symlink_metadata(self.upper.join(rel).join(&name)).is_err() {
                self.out.push(Change {
                    path: format!("{path}/{name}"),
                    kind: ChangeKind::Deleted,
                });
            }
        }
        Ok(())
    }

    /// Whether directory `path` differs from the lower one only by holding mount points
    /// the runtime created.
    fn only_init(&self, path: &str, lower: &std::fs::Metadata, upper: &std::fs::Metadata) -> bool {
        if lower.mode() != upper.mode() {
            return false;
        }
        let Ok(entries) = std::fs::read_dir(self.upper.join(path.trim_start_matches('/'))) else {
            return false;
        };
        let mut any = false;
        for e in entries.filter_map(Result::ok) {
            let child = format!("{path}/{}", e.file_name().to_string_lossy());
            if !INIT_PATHS.contains(&child.as_str()) || self.in_lower(&child).is_some() {
                return false;
            }
            any = true;
        }
        any
    }

    /// The path in the top-most lower layer that has it (following symlinks, as
    /// dockerd's `os.Stat` does).
    fn in_lower(&self, path: &str) -> Option<std::fs::Metadata> {
        self.layers
            .iter()
            .rev()
            .find_map(|l| std::fs::metadata(l.join(path.trim_start_matches('/'))).ok())
    }
}

fn same_dir(lower: &std::fs::Metadata, upper: &std::fs::Metadata) -> bool {
    lower.size() == upper.size()
        && lower.mode() == upper.mode()
        && lower.mtime() == upper.mtime()
        && lower.mtime_nsec() == upper.mtime_nsec()
}

/// Whether overlayfs marked `dir` opaque.
fn is_opaque(dir: &Path) -> bool {
    let mut value = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut value),
        Ok(1) if value[0] == b'y'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_adds_changes_and_deletes() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        let l = lower.path();
        let u = upper.path();
        std::fs::create_dir_all(l.join("etc")).unwrap();
        std::fs::write(l.join("etc/passwd"), "a").unwrap();
        std::fs::write(l.join("etc/gone"), "a").unwrap();
        std::fs::create_dir_all(u.join("etc")).unwrap();
        std::fs::write(u.join("etc/passwd"), "b").unwrap();
        std::fs::create_dir_all(u.join("new/deep")).unwrap();
        nix::sys::stat::mknod(
            &u.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0),
            0,
        )
        .unwrap();
        let got: Vec<(String, ChangeKind)> = changes(u, &[l.to_path_buf()])
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/etc".to_string(), ChangeKind::Modified),
                ("/etc/gone".to_string(), ChangeKind::Deleted),
                ("/etc/passwd".to_string(), ChangeKind::Modified),
                ("/new".to_string(), ChangeKind::Added),
                ("/new/deep".to_string(), ChangeKind::Added),
            ]
        );
    }
}
