//! The build context on disk: unpacking the client's tar, `.dockerignore` applied,
//! COPY/ADD sources resolved without ever leaving the context, and checksums of what a
//! source holds (the classic builder's cache key for COPY/ADD).
//!
//! Sources are context-relative: a leading `/` means the context root, as in docker.
//! A source that climbs out with `..`, or a symlink on its way that points outside the
//! context (absolute targets included), is refused with the path named.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::dockerignore::{clean, DockerIgnore, Pattern};
use crate::error::{shown, BuildFileError};

/// Symlinks followed while resolving one source, at most (like the kernel's limit).
const MAX_LINKS: usize = 40;

/// A build context unpacked in a directory.
#[derive(Clone, Debug)]
pub struct ContextDir {
    root: PathBuf,
    /// An image's root file system: absolute symlinks lead to its own root.
    image_root: bool,
}

fn io<'a>(path: &'a Path, what: &str) -> impl FnOnce(std::io::Error) -> BuildFileError + 'a {
    let what = what.to_owned();
    move |e| BuildFileError::io(path, &what, e)
}

impl ContextDir {
    /// A context already on disk at `root`.
    pub fn open(root: &Path) -> ContextDir {
        ContextDir {
            root: root.to_owned(),
            image_root: false,
        }
    }

    /// An image's root file system (the source of `COPY --from`), where absolute
    /// symlinks are resolved inside `root`, as the image sees them.
    pub fn open_image_root(root: &Path) -> ContextDir {
        ContextDir {
            root: root.to_owned(),
            image_root: true,
        }
    }

    /// Unpacks a context tar (plain or gzip) into the empty directory `dest`. Entries
    /// that would land outside `dest` are refused by the tar reader.
    pub fn unpack(reader: impl Read, dest: &Path) -> Result<ContextDir, BuildFileError> {
        let mut reader = BufReader::new(reader);
        let gzip = reader
            .fill_buf()
            .map_err(io(dest, "reading the build context for"))?
            .starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn Read> = if gzip {
            Box::new(flate2::read::GzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        archive.unpack(dest).map_err(|source| BuildFileError::Io {
            context: "reading the build context (a tar archive, plain or gzip)".into(),
            source,
        })?;
        Ok(ContextDir::open(dest))
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads a context file (the Dockerfile, `.dockerignore`) by relative path.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, BuildFileError> {
        let path = self.resolve_one(rel)?;
        match fs::read(&path) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BuildFileError::io(&path, "reading", e)),
        }
    }

    /// Deletes what `.dockerignore` excludes (its own file and `keep` stay readable,
    /// as dockerd keeps the Dockerfile).
    pub fn apply_ignore(&self, ignore: &DockerIgnore, keep: &[&str]) -> Result<(), BuildFileError> {
        if ignore.is_empty() {
            return Ok(());
        }
        let mut paths = Vec::new();
        walk(&self.root, &self.root, &mut paths)?;
        // Deepest first, so a directory is emptied before it is looked at.
        paths.reverse();
        for rel in paths {
            let name = rel.to_string_lossy();
            if keep.contains(&name.as_ref()) || !ignore.excludes(&name) {
                continue;
            }
            let full = self.root.join(&rel);
            let meta = fs::symlink_metadata(&full).map_err(io(&full, "inspecting"))?;
            if meta.is_dir() {
                // Kept when something inside was re-included by an exception.
                let _ = fs::remove_dir(&full);
            } else {
                fs::remove_file(&full).map_err(io(&full, "removing"))?;
            }
        }
        Ok(())
    }

    /// The host paths a COPY/ADD source names: globs expanded, symlinks on the way
    /// followed inside the context. Refuses escapes; fails when nothing matches.
    pub fn resolve(&self, source: &str) -> Result<Vec<PathBuf>, BuildFileError> {
        Ok(self
            .resolve_named(source)?
            .into_iter()
            .map(|(path, _)| path)
            .collect())
    }

    /// [`ContextDir::resolve`] with the name each match had before symlinks were
    /// followed (a file copied into a directory keeps the name it was given by).
    pub fn resolve_named(
        &self,
        source: &str,
    ) -> Result<Vec<(PathBuf, std::ffi::OsString)>, BuildFileError> {
        let cleaned = clean(source.trim_start_matches('/'));
        if cleaned == ".." || cleaned.starts_with("../") {
            return Err(BuildFileError::OutsideContext {
                path: source.to_owned(),
            });
        }
        if !cleaned.contains(['*', '?', '[']) {
            let path = self.resolve_one(&cleaned)?;
            if fs::symlink_metadata(&path).is_err() {
                return Err(BuildFileError::SourceNotFound {
                    path: source.to_owned(),
                });
            }
            let name = Path::new(&cleaned)
                .file_name()
                .unwrap_or_default()
                .to_owned();
            return Ok(vec![(path, name)]);
        }
        let pattern = Pattern::new(&cleaned, false, false)?;
        let mut all = Vec::new();
        walk(&self.root, &self.root, &mut all)?;
        let mut found = Vec::new();
        for rel in all {
            if pattern.matches(&rel.to_string_lossy()) {
                let name = rel.file_name().unwrap_or_default().to_owned();
                found.push((self.resolve_one(&rel.to_string_lossy())?, name));
            }
        }
        if found.is_empty() {
            return Err(BuildFileError::SourceNotFound {
                path: source.to_owned(),
            });
        }
        Ok(found)
    }

    /// Follows `rel` component by component, symlinks included, refusing to leave the root.
    fn resolve_one(&self, rel: &str) -> Result<PathBuf, BuildFileError> {
        let mut pending: Vec<String> = clean(rel)
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .map(str::to_owned)
            .rev()
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                if done.pop().is_none() {
                    return Err(BuildFileError::OutsideContext {
                        path: rel.to_owned(),
                    });
                }
                continue;
            }
            done.push(part);
            let here = self.root.join(done.join("/"));
            let Ok(meta) = fs::symlink_metadata(&here) else {
                continue;
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            links += 1;
            let target = fs::read_link(&here).map_err(io(&here, "reading the symlink"))?;
            let target_text = target.to_string_lossy().into_owned();
            done.pop();
            let joined = if self.image_root && target.is_absolute() {
                clean(target_text.trim_start_matches('/'))
            } else {
                clean(&format!("{}/{}", done.join("/"), target_text))
            };
            if (target.is_absolute() && !self.image_root)
                || joined == ".."
                || joined.starts_with("../")
                || links > MAX_LINKS
            {
                return Err(BuildFileError::SymlinkOutsideContext {
                    path: shown(
                        Path::new(&done.join("/"))
                            .join(here.file_name().unwrap_or_default())
                            .as_path(),
                    ),
                    target: target_text,
                });
            }
            done.clear();
            pending.extend(
                joined
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .map(str::to_owned)
                    .rev(),
            );
        }
        Ok(self.root.join(done.join("/")))
    }

    /// A checksum of everything under `paths` (names relative to each path, types,
    /// modes, sizes, contents, link targets; not times or owners).
    pub fn checksum(&self, paths: &[PathBuf]) -> Result<String, BuildFileError> {
        let mut hash = Sha256::new();
        for path in paths {
            hash.update(
                path.strip_prefix(&self.root)
                    .unwrap_or(path)
                    .to_string_lossy()
                    .as_bytes(),
            );
            hash.update([0]);
            let mut entries = vec![PathBuf::new()];
            if fs::symlink_metadata(path)
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                walk(path, path, &mut entries)?;
            }
            for rel in entries {
                let full = if rel.as_os_str().is_empty() {
                    path.clone()
                } else {
                    path.join(&rel)
                };
                let meta = fs::symlink_metadata(&full).map_err(io(&full, "inspecting"))?;
                hash.update(format!(
                    "{}\0{:o}\0{}\0",
                    rel.display(),
                    meta.mode(),
                    meta.len()
                ));
                if meta.file_type().is_symlink() {
                    let target = fs::read_link(&full).map_err(io(&full, "reading the symlink"))?;
                    hash.update(target.to_string_lossy().as_bytes());
                } else if meta.is_file() {
                    let mut file = fs::File::open(&full).map_err(io(&full, "opening"))?;
                    std::io::copy(&mut file, &mut hash).map_err(io(&full, "reading"))?;
                }
            }
        }
        Ok(hex::encode(hash.finalize()))
    }
}

/// Every path under `dir`, relative to `base`, parents before children, sorted.
pub fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BuildFileError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io(dir, "listing"))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io(dir, "listing"))?;
    names.sort();
    for name in names {
        let full = dir.join(&name);
        out.push(full.strip_prefix(base).unwrap_or(&full).to_owned());
        let meta = fs::symlink_metadata(&full).map_err(io(&full, "inspecting"))?;
        if meta.is_dir() {
            walk(base, &full, out)?;
        }
    }
    Ok(())
}

/// Whether a file's permission bits are set as `mode` says (used by tests and `--chmod`).
pub fn set_mode(path: &Path, mode: u32) -> Result<(), BuildFileError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io(path, "changing the mode of"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn context() -> (tempfile::TempDir, ContextDir) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("src/sub")).unwrap();
        fs::write(root.join("src/a.txt"), "a").unwrap();
        fs::write(root.join("src/b.txt"), "b").unwrap();
        fs::write(root.join("src/sub/c.txt"), "c").unwrap();
        symlink("sub/c.txt", root.join("src/inside")).unwrap();
        symlink("/etc/passwd", root.join("abs")).unwrap();
        symlink("../../etc", root.join("src/up")).unwrap();
        let ctx = ContextDir::open(root);
        (dir, ctx)
    }

    #[test]
    fn escapes_are_refused_with_the_path() {
        let (_d, ctx) = context();
        let e = ctx.resolve("../x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Forbidden path outside the build context: ../x"
        );
        assert!(ctx.resolve("src/../../x").is_err());
        let e = ctx.resolve("abs").unwrap_err();
        assert!(
            e.to_string().contains("abs") && e.to_string().contains("/etc/passwd"),
            "{e}"
        );
        let e = ctx.resolve("src/up/passwd").unwrap_err();
        assert!(e.to_string().contains("src/up"), "{e}");
    }

    #[test]
    fn resolves_inside_links_and_absolute_sources() {
        let (_d, ctx) = context();
        assert_eq!(
            ctx.resolve("src/inside").unwrap(),
            vec![ctx.root().join("src/sub/c.txt")]
        );
        assert_eq!(
            ctx.resolve("/src/a.txt").unwrap(),
            vec![ctx.root().join("src/a.txt")]
        );
        assert!(matches!(
            ctx.resolve("nope"),
            Err(BuildFileError::SourceNotFound { .. })
        ));
    }

    #[test]
    fn globs_stay_in_one_component() {
        let (_d, ctx) = context();
        let found = ctx.resolve("src/*.txt").unwrap();
        assert_eq!(
            found,
            vec![ctx.root().join("src/a.txt"), ctx.root().join("src/b.txt")]
        );
        assert!(ctx.resolve("*.none").is_err());
    }

    #[test]
    fn checksums_follow_contents_not_times() {
        let (_d, ctx) = context();
        let paths = ctx.resolve("src").unwrap();
        let first = ctx.checksum(&paths).unwrap();
        let file = ctx.resolve("src/a.txt").unwrap();
        assert_ne!(ctx.checksum(&file).unwrap(), first);
        assert_eq!(first, ctx.checksum(&paths).unwrap());
        fs::write(ctx.root().join("src/sub/c.txt"), "changed").unwrap();
        assert_ne!(first, ctx.checksum(&paths).unwrap());
    }

    #[test]
    fn ignore_removes_excluded_but_keeps_exceptions() {
        let (_d, ctx) = context();
        let ignore = DockerIgnore::parse("src\n!src/b.txt\n").unwrap();
        ctx.apply_ignore(&ignore, &["Dockerfile"]).unwrap();
        assert!(!ctx.root().join("src/a.txt").exists());
        assert!(ctx.root().join("src/b.txt").exists());
        assert!(!ctx.root().join("src/sub").exists());
    }

    /// A context tar with `entries` (name, kind, link target or contents).
    fn crafted(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut data = Vec::new();
        {
            let mut b = tar::Builder::new(&mut data);
            for (name, kind, extra) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(*kind);
                h.set_mode(0o644);
                if kind.is_file() {
                    h.set_size(extra.len() as u64);
                    b.append_data(&mut h, name, extra.as_bytes()).unwrap();
                } else {
                    h.set_size(0);
                    b.append_link(&mut h, name, extra).unwrap();
                }
            }
            b.finish().unwrap();
        }
        data
    }

    #[test]
    fn unpack_never_writes_through_links_out_of_the_context() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::fs::write(&target, "original").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("ctx");
        fs::create_dir(&dest).unwrap();
        let data = crafted(&[
            (
                "out",
                tar::EntryType::Symlink,
                outside.path().to_str().unwrap(),
            ),
            ("out/victim", tar::EntryType::Regular, "overwritten"),
        ]);
        let _ = ContextDir::unpack(&data[..], &dest);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "original");
        let data = crafted(&[("hard", tar::EntryType::Link, target.to_str().unwrap())]);
        let _ = ContextDir::unpack(&data[..], &dest);
        let hard = dest.join("hard");
        if hard.exists() {
            use std::os::unix::fs::MetadataExt;
            assert_ne!(
                fs::metadata(&hard).unwrap().ino(),
                fs::metadata(&target).unwrap().ino(),
                "a hard link to a file outside the context"
            );
        }
    }

    #[test]
    fn unpack_refuses_entries_outside() {
        let mut data = Vec::new();
        {
            let mut b = tar::Builder::new(&mut data);
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, "ok.txt", &b"x"[..]).unwrap();
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..9].copy_from_slice(b"../evil.t");
            h.set_size(1);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
            b.finish().unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("ctx");
        fs::create_dir(&dest).unwrap();
        let _ = ContextDir::unpack(&data[..], &dest);
        assert!(!dir.path().join("evil.t").exists());
    }
}
