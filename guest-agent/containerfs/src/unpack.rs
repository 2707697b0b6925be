//! Extracting a tar archive into a directory of a container (`docker cp` into it), every
//! file created by an `*at` call on a parent directory opened inside the container's
//! root ([`crate::inroot`]).
//!
//! As dockerd does: entry names are relative to the destination and one that would
//! leave it (`../x`) is refused; missing parent directories are created; an existing
//! file is replaced (a directory only by a directory unless `noOverwriteDirNonDir`
//! refuses it); owners come from the archive, or are the container user's with
//! `copyUIDGID`; directory times are set once their contents are in.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::inroot::Root;
use crate::{Error, ExtractOptions};

/// Where and how to extract.
pub struct Target<'a> {
    /// The container's root.
    pub root: &'a Root,
    /// The destination directory, absolute in the container, symlinks resolved.
    pub dest: Vec<u8>,
    /// The options of the request.
    pub opts: ExtractOptions,
    /// Owner of every file with `copyUIDGID`.
    pub owner: Option<(u32, u32)>,
}

fn bad(msg: String) -> Error {
    Error::BadRequest(msg)
}

fn io_err(what: &str, name: &[u8], e: impl Into<io::Error>) -> Error {
    let e: io::Error = e.into();
    if e.raw_os_error() == Some(libc::EROFS) {
        // A read-only volume or bind (dockerd refuses these before extracting).
        return bad("mounted volume is marked read-only".into());
    }
    Error::Failed(format!("{what} {}: {e}", String::from_utf8_lossy(name)))
}

/// `name` as components relative to the destination, `.` and `..` folded; an error if it
/// would leave the destination.
pub fn clean_entry(name: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(bad(format!(
                        "invalid archive entry {:?}: it is outside of the destination",
                        String::from_utf8_lossy(name)
                    )));
                }
            }
            _ => parts.push(c.to_vec()),
        }
    }
    Ok(parts)
}

impl Target<'_> {
    fn path_of(&self, parts: &[Vec<u8>]) -> Vec<u8> {
        let mut p = self.dest.clone();
        for part in parts {
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(part);
        }
        p
    }

    /// Opens (creating as needed, mode 0755) the directory `parts` below the destination.
    fn ensure_dir(&self, parts: &[Vec<u8>]) -> Result<OwnedFd, Error> {
        let path = self.path_of(parts);
        match self.root.open_dir(&path) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !parts.is_empty() => {}
            Err(e) => return Err(io_err("opening", &path, e)),
        }
        let (last, up) = parts.split_last().unwrap_or((&parts[0], &[]));
        let parent = self.ensure_dir(up)?;
        match rfs::mkdirat(&parent, OsStr::from_bytes(last), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(io_err("creating", &path, e)),
        }
        self.root
            .open_dir(&path)
            .map_err(|e| io_err("opening", &path, e))
    }
}

/// Extracts the archive read from `input` into `target`.
pub fn extract(target: &Target<'_>, input: impl Read) -> Result<(), Error> {
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("reading the archive: {e}")))?;
    let mut dir_times: Vec<(Vec<Vec<u8>>, u64)> = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("reading the archive: {e}")))?;
        let name = entry.path_bytes().into_owned();
        let parts = clean_entry(&name)?;
        let Some((base, up)) = parts.split_last() else {
            continue; // the destination itself (`./`)
        };
        let header = entry.header().clone();
        let kind = header.entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName
        ) {
            continue;
        }
        let parent = target.ensure_dir(up)?;
        let at = OsStr::from_bytes(base);
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let is_dir = kind == tar::EntryType::Directory;
        match rfs::statat(&parent, at, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let existing_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if target.opts.no_overwrite_dir_non_dir && existing_dir != is_dir {
                    // dockerd's words, naming the entry and the destination.
                    let full = String::from_utf8_lossy(&target.path_of(&parts)).into_owned();
                    let dest = String::from_utf8_lossy(&target.dest).into_owned();
                    return Err(bad(if existing_dir {
                        format!("cannot overwrite directory {full:?} with non-directory {dest:?}")
                    } else {
                        format!("cannot overwrite non-directory {full:?} with directory {dest:?}")
                    }));
                }
                if !(existing_dir && is_dir) {
                    remove_all(&parent, base).map_err(|e| io_err("replacing", &name, e))?;
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(io_err("checking", &name, e)),
        }
        match kind {
            tar::EntryType::Directory => {
                match rfs::mkdirat(&parent, at, Mode::from_raw_mode(mode)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_err("creating", &name, e)),
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rfs::openat(
                    &parent,
                    at,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(mode),
                )
                .map_err(|e| io_err("creating", &name, e))?;
                let mut file = std::fs::File::from(fd);
                io::copy(&mut entry, &mut file).map_err(|e| io_err("writing", &name, e))?;
            }
            tar::EntryType::Symlink => {
                let link = entry.link_name_bytes().unwrap_or_default().into_owned();
                rfs::symlinkat(OsStr::from_bytes(&link), &parent, at)
                    .map_err(|e| io_err("creating", &name, e))?;
            }
            tar::EntryType::Link => {
                let link = entry.link_name_bytes().unwrap_or_default().into_owned();
                let link_parts = clean_entry(&link)?;
                let Some((link_base, link_up)) = link_parts.split_last() else {
                    return Err(bad(format!(
                        "invalid hard link {:?} to the destination itself",
                        String::from_utf8_lossy(&name)
                    )));
                };
                let link_parent = target
                    .root
                    .open_dir(&target.path_of(link_up))
                    .map_err(|e| io_err("finding the target of", &name, e))?;
                rfs::linkat(
                    &link_parent,
                    OsStr::from_bytes(link_base),
                    &parent,
                    at,
                    AtFlags::empty(),
                )
                .map_err(|e| io_err("linking", &name, e))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = match kind {
                    tar::EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if kind == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rfs::makedev(major, minor))
                    }
                };
                rfs::mknodat(&parent, at, ft, Mode::from_raw_mode(mode), dev)
                    .map_err(|e| io_err("creating", &name, e))?;
            }
            _ => continue, // other entry kinds are skipped, as dockerd skips them
        }
        if kind == tar::EntryType::Link {
            continue;
        }
        let (uid, gid) = match target.owner {
            Some(owner) => owner,
            None => (
                header.uid().unwrap_or(0) as u32,
                header.gid().unwrap_or(0) as u32,
            ),
        };
        let (u, g) = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
        rfs::chownat(&parent, at, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_err("changing the owner of", &name, e))?;
        let mtime = header.mtime().unwrap_or(0);
        if kind == tar::EntryType::Symlink {
            set_mtime(&parent, at, mtime).map_err(|e| io_err("timing", &name, e))?;
            continue;
        }
        // After chown, which clears set-id bits.
        rfs::chmodat(&parent, at, Mode::from_raw_mode(mode), AtFlags::empty())
            .map_err(|e| io_err("changing the mode of", &name, e))?;
        if is_dir {
            dir_times.push((parts.clone(), mtime));
        } else {
            set_mtime(&parent, at, mtime).map_err(|e| io_err("timing", &name, e))?;
        }
    }
    for (parts, mtime) in dir_times.into_iter().rev() {
        let Some((base, up)) = parts.split_last() else {
            continue;
        };
        if let Ok(parent) = target.root.open_dir(&target.path_of(up)) {
            let _ = set_mtime(&parent, OsStr::from_bytes(base), mtime);
        }
    }
    Ok(())
}

fn set_mtime(parent: &OwnedFd, at: &OsStr, mtime: u64) -> rustix::io::Result<()> {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(0),
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rfs::utimensat(parent, at, &times, AtFlags::SYMLINK_NOFOLLOW)
}

/// Removes entry `name` of `parent`, a directory with everything in it.
fn remove_all(parent: &OwnedFd, name: &[u8]) -> rustix::io::Result<()> {
    let at = OsStr::from_bytes(name);
    match rfs::unlinkat(parent, at, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let dir = rfs::openat(
        parent,
        at,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children = Vec::new();
    for entry in rfs::Dir::read_from(&dir)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            children.push(n.to_vec());
        }
    }
    for child in children {
        remove_all(&dir, &child)?;
    }
    rfs::unlinkat(parent, at, AtFlags::REMOVEDIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o640);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(1_000_000);
        h.set_size(size);
        h
    }

    #[test]
    fn entries_stay_in_the_destination() {
        assert!(clean_entry(b"../x").is_err());
        assert!(clean_entry(b"a/../../x").is_err());
        assert_eq!(clean_entry(b"./a/../b/").unwrap(), vec![b"b".to_vec()]);
    }

    #[test]
    fn extracts_through_symlinks_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir(r.join("dest")).unwrap();
        // A symlink to "/" inside the container: writing through it stays inside.
        std::os::unix::fs::symlink("/", r.join("dest/escape")).unwrap();
        // An absolute symlink naming a host directory leads to the container's own.
        std::os::unix::fs::symlink(outside.path(), r.join("dest/abs")).unwrap();
        let inside_abs = r.join(outside.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside_abs).unwrap();
        let root = Root::open(r).unwrap();
        let data = archive(|b| {
            let mut h = header(tar::EntryType::Regular, 2);
            b.append_data(&mut h, "escape/tmp/pwned", &b"hi"[..])
                .unwrap();
            let mut h = header(tar::EntryType::Regular, 2);
            b.append_data(&mut h, "abs/x", &b"hi"[..]).unwrap();
            let mut h = header(tar::EntryType::Directory, 0);
            b.append_data(&mut h, "sub/", std::io::empty()).unwrap();
            let mut h = header(tar::EntryType::Symlink, 0);
            b.append_link(&mut h, "sub/link", "/etc").unwrap();
        });
        let target = Target {
            root: &root,
            dest: b"/dest".to_vec(),
            opts: ExtractOptions::default(),
            owner: None,
        };
        extract(&target, &data[..]).unwrap();
        assert_eq!(std::fs::read(r.join("tmp/pwned")).unwrap(), b"hi");
        assert_eq!(std::fs::read(inside_abs.join("x")).unwrap(), b"hi");
        assert!(!outside.path().join("x").exists());
        let meta = std::fs::symlink_metadata(r.join("dest/sub")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (1234, 5678, 0o640)
        );
        assert_eq!(meta.mtime(), 1_000_000);
        assert_eq!(
            std::fs::read_link(r.join("dest/sub/link"))
                .unwrap()
                .to_str(),
            Some("/etc")
        );
    }

    #[test]
    fn refuses_escapes_and_dir_swaps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d/sub")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let escape = archive(|b| {
            let mut h = header(tar::EntryType::Regular, 1);
            b.append_data(&mut h, "x", &b"x"[..]).unwrap();
            // A name with `..` written raw (the builder refuses it).
            let mut h = header(tar::EntryType::Regular, 1);
            h.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"../../y");
            h.set_cksum();
            b.append(&h, &b"y"[..]).unwrap();
        });
        let mut target = Target {
            root: &root,
            dest: b"/d".to_vec(),
            opts: ExtractOptions::default(),
            owner: Some((0, 0)),
        };
        let err = extract(&target, &escape[..]).unwrap_err();
        assert!(
            err.to_string().contains("outside of the destination"),
            "{err}"
        );
        assert!(!dir.path().join("y").exists());
        let swap = archive(|b| {
            let mut h = header(tar::EntryType::Regular, 1);
            b.append_data(&mut h, "sub", &b"x"[..]).unwrap();
        });
        target.opts.no_overwrite_dir_non_dir = true;
        let err = extract(&target, &swap[..]).unwrap_err();
        assert!(
            err.to_string().contains("cannot overwrite directory"),
            "{err}"
        );
        target.opts.no_overwrite_dir_non_dir = false;
        extract(&target, &swap[..]).unwrap();
        assert!(dir.path().join("d/sub").is_file());
    }
}
