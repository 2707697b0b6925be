//! COPY and ADD into a step's layer: files, directories (their contents), symlinks as
//! links, modes and times kept, owner root or `--chown`, `--chmod`, parent directories
//! created, local tar archives extracted by ADD. Destinations are resolved in the
//! image's view (`view`), never through a symlink out of it, and written under `out`:
//! a staging directory (existing parent directories are copied up from the view with
//! their metadata, as overlayfs would) or the view itself when it is writable.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::rootfs::in_scope;

/// What one COPY/ADD does.
pub struct CopyJob {
    /// Host paths of the sources (already resolved, safe to read), each with the name
    /// it was given by (a symlink's own name, not its target's).
    pub sources: Vec<(PathBuf, std::ffi::OsString)>,
    /// Absolute destination in the image (a trailing `/` means a directory).
    pub dest: String,
    /// `--chown`, resolved; root otherwise.
    pub owner: (u32, u32),
    /// `--chmod`.
    pub chmod: Option<u32>,
    /// ADD: extract local tar archives.
    pub extract: bool,
}

fn err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> String {
    let text = format!("{what} {}", path.display());
    move |e| format!("{text}: {e}")
}

/// Where `path` (absolute in the image) goes under `out`: resolved in `view`.
fn target(view: &Path, out: &Path, path: &str) -> PathBuf {
    let resolved = in_scope(view, path, true);
    match resolved.strip_prefix(view) {
        Ok(rel) => out.join(rel),
        Err(_) => out.to_owned(),
    }
}

/// Runs `job`: reads the image in `view`, writes under `out` (see the module docs).
pub fn copy_into(view: &Path, out: &Path, job: &CopyJob) -> Result<(), String> {
    let dest = target(view, out, &job.dest);
    let in_view = in_scope(view, &job.dest, true);
    let dest_is_dir =
        job.dest.ends_with('/') || job.dest.ends_with("/.") || dest.is_dir() || in_view.is_dir();
    if job.sources.len() > 1 && !dest_is_dir {
        return Err(
            "When using COPY with more than one source file, the destination must be a directory and end with a /"
                .into(),
        );
    }
    for (source, name) in &job.sources {
        let meta = fs::metadata(source).map_err(err("inspecting", source))?;
        if meta.is_dir() {
            let target = make_dirs(view, out, &job.dest, job.owner)?;
            copy_tree(source, &target, job)?;
        } else if job.extract && is_archive(source) {
            let target = make_dirs(view, out, &job.dest, job.owner)?;
            extract(source, &target)?;
        } else {
            let target = if dest_is_dir {
                let dir = make_dirs(view, out, &job.dest, job.owner)?;
                dir.join(name)
            } else {
                let (parent, name) = match job.dest.trim_end_matches('/').rsplit_once('/') {
                    Some((p, n)) => (if p.is_empty() { "/" } else { p }, n),
                    None => ("/", job.dest.as_str()),
                };
                make_dirs(view, out, parent, job.owner)?.join(name)
            };
            copy_entry(source, &target, job)?;
        }
    }
    Ok(())
}

/// Makes `dir` (absolute in the image, resolved in `view`) exist under `out`: a
/// directory the image has is copied up with its mode, owner and time; a missing one is
/// created 0755 owned by `owner`. Returns its path under `out`.
pub fn make_dirs(view: &Path, out: &Path, dir: &str, owner: (u32, u32)) -> Result<PathBuf, String> {
    let resolved = in_scope(view, dir, true);
    let rel = resolved
        .strip_prefix(view)
        .unwrap_or(Path::new(""))
        .to_owned();
    let mut at = PathBuf::new();
    for part in rel.components() {
        at.push(part);
        let host = out.join(&at);
        if fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        if fs::symlink_metadata(&host).is_ok() {
            fs::remove_file(&host).map_err(err("replacing", &host))?;
        }
        fs::create_dir(&host).map_err(err("creating", &host))?;
        let (mode, uid, gid, mtime) = match fs::symlink_metadata(view.join(&at)) {
            Ok(m) if m.is_dir() => (
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                Some(filetime::FileTime::from_last_modification_time(&m)),
            ),
            _ => (0o755, owner.0, owner.1, None),
        };
        fs::set_permissions(&host, fs::Permissions::from_mode(mode))
            .map_err(err("setting the mode of", &host))?;
        std::os::unix::fs::lchown(&host, Some(uid), Some(gid))
            .map_err(err("changing the owner of", &host))?;
        if let Some(t) = mtime {
            let _ = filetime::set_file_mtime(&host, t);
        }
    }
    Ok(out.join(rel))
}

/// Copies the contents of directory `source` into the directory `target`.
fn copy_tree(source: &Path, target: &Path, job: &CopyJob) -> Result<(), String> {
    let mut names: Vec<_> = fs::read_dir(source)
        .map_err(err("listing", source))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for name in names {
        copy_entry(&source.join(&name), &target.join(&name), job)?;
    }
    Ok(())
}

/// Copies one entry (recursively for directories) to `target`.
fn copy_entry(source: &Path, target: &Path, job: &CopyJob) -> Result<(), String> {
    let meta = fs::symlink_metadata(source).map_err(err("inspecting", source))?;
    let existing = fs::symlink_metadata(target).ok();
    let kind = meta.file_type();
    if let Some(old) = &existing {
        if !(old.is_dir() && kind.is_dir()) {
            if old.is_dir() {
                fs::remove_dir_all(target).map_err(err("replacing", target))?;
            } else {
                fs::remove_file(target).map_err(err("replacing", target))?;
            }
        }
    }
    let mode = job.chmod.unwrap_or(meta.mode() & 0o7777);
    if kind.is_symlink() {
        let link = fs::read_link(source).map_err(err("reading the symlink", source))?;
        std::os::unix::fs::symlink(&link, target).map_err(err("creating", target))?;
    } else if kind.is_dir() {
        if existing.as_ref().is_none_or(|m| !m.is_dir()) {
            fs::create_dir(target).map_err(err("creating", target))?;
        }
        copy_tree(source, target, job)?;
        fs::set_permissions(target, fs::Permissions::from_mode(mode))
            .map_err(err("setting the mode of", target))?;
    } else if kind.is_file() {
        fs::copy(source, target).map_err(err("copying to", target))?;
        fs::set_permissions(target, fs::Permissions::from_mode(mode))
            .map_err(err("setting the mode of", target))?;
    } else {
        return Err(format!(
            "{}: only files, directories and symlinks can be copied",
            source.display()
        ));
    }
    std::os::unix::fs::lchown(target, Some(job.owner.0), Some(job.owner.1))
        .map_err(err("changing the owner of", target))?;
    let mtime = filetime::FileTime::from_last_modification_time(&meta);
    let _ = filetime::set_symlink_file_times(target, mtime, mtime);
    Ok(())
}

/// A plain or gzip-compressed tar archive (what ADD extracts)?
fn is_archive(path: &Path) -> bool {
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 512];
    let mut reader = decompressed(file);
    let mut read = 0;
    while read < head.len() {
        match reader.read(&mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    read == 512 && &head[257..262] == b"ustar"
}

fn decompressed(file: fs::File) -> Box<dyn Read> {
    let mut reader = BufReader::new(file);
    let gzip = reader
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    if gzip {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    }
}

/// Extracts an archive into `target`; entries cannot leave it.
fn extract(source: &Path, target: &Path) -> Result<(), String> {
    let file = fs::File::open(source).map_err(err("opening", source))?;
    let mut archive = tar::Archive::new(decompressed(file));
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive
        .unpack(target)
        .map_err(|e| format!("extracting {}: {e}", source.display()))
}

/// `--chown=user[:group]`: names looked up in the image's `/etc/passwd` and
/// `/etc/group`; a user alone means the group of the same name or number, as in docker.
pub fn resolve_owner(root: &Path, spec: &str) -> Result<(u32, u32), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, spec),
    };
    let lookup = |file: &str, name: &str, what: &str| -> Result<u32, String> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok(n);
        }
        let text = fs::read_to_string(in_scope(root, file, true)).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let fields: Vec<&str> = l.split(':').collect();
                (fields.len() > 2 && fields[0] == name).then(|| fields[2].parse().ok())?
            })
            .next()
            .ok_or_else(|| format!("unable to convert uid/gid chown string to host mapping: can't find {what} {name:?} in {file}"))
    };
    Ok((
        lookup("/etc/passwd", user, "uid for user")?,
        lookup("/etc/group", group, "gid for group")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(sources: Vec<PathBuf>, dest: &str) -> CopyJob {
        CopyJob {
            sources: sources
                .into_iter()
                .map(|p| {
                    let name = p.file_name().unwrap_or_default().to_owned();
                    (p, name)
                })
                .collect(),
            dest: dest.into(),
            owner: (0, 0),
            chmod: None,
            extract: false,
        }
    }

    #[test]
    fn files_dirs_and_modes() {
        let src = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("d/sub")).unwrap();
        fs::write(src.path().join("d/sub/f"), "x").unwrap();
        fs::write(src.path().join("a.sh"), "#!").unwrap();
        fs::set_permissions(src.path().join("a.sh"), fs::Permissions::from_mode(0o750)).unwrap();
        copy_into(
            root.path(),
            root.path(),
            &job(vec![src.path().join("a.sh")], "/opt/run.sh"),
        )
        .unwrap();
        let meta = fs::metadata(root.path().join("opt/run.sh")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o750);
        copy_into(
            root.path(),
            root.path(),
            &job(vec![src.path().join("d")], "/app"),
        )
        .unwrap();
        assert!(root.path().join("app/sub/f").is_file());
        copy_into(
            root.path(),
            root.path(),
            &job(vec![src.path().join("a.sh")], "/app/"),
        )
        .unwrap();
        assert!(root.path().join("app/a.sh").is_file());
        let mut j = job(vec![src.path().join("a.sh")], "/m");
        j.chmod = Some(0o600);
        copy_into(root.path(), root.path(), &j).unwrap();
        assert_eq!(
            fs::metadata(root.path().join("m")).unwrap().mode() & 0o777,
            0o600
        );
        let two = job(vec![src.path().join("a.sh"), src.path().join("d")], "/x");
        assert!(copy_into(root.path(), root.path(), &two).is_err());
    }

    #[test]
    fn destinations_stay_inside_the_root() {
        let src = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(src.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        copy_into(
            root.path(),
            root.path(),
            &job(vec![src.path().join("f")], "/out/"),
        )
        .unwrap();
        assert!(!outside.path().join("f").exists());
    }

    #[test]
    fn staged_copies_up_parents_with_their_metadata() {
        let src = tempfile::tempdir().unwrap();
        let view = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        fs::write(src.path().join("f"), "x").unwrap();
        fs::create_dir_all(view.path().join("usr/share")).unwrap();
        fs::set_permissions(view.path().join("usr"), fs::Permissions::from_mode(0o711)).unwrap();
        std::os::unix::fs::symlink("/usr/share", view.path().join("s")).unwrap();
        copy_into(
            view.path(),
            out.path(),
            &job(vec![src.path().join("f")], "/s/new/"),
        )
        .unwrap();
        assert!(out.path().join("usr/share/new/f").is_file());
        let mode = fs::metadata(out.path().join("usr")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o711);
        assert!(
            !view.path().join("usr/share/new").exists(),
            "the view is not written"
        );
    }

    #[test]
    fn owners_by_name() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            root.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nstaff:x:50:\n",
        )
        .unwrap();
        assert_eq!(resolve_owner(root.path(), "app").unwrap(), (1000, 1000));
        assert_eq!(resolve_owner(root.path(), "app:staff").unwrap(), (1000, 50));
        assert_eq!(resolve_owner(root.path(), "7:8").unwrap(), (7, 8));
        assert!(resolve_owner(root.path(), "nobody").is_err());
    }
}
