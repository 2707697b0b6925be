//! A container's root directory as an open descriptor, and paths resolved inside it.
//!
//! Every open goes through `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` on the
//! root's descriptor: symlinks (absolute or relative) and `..` are resolved as if the
//! root were `/`, so nothing outside the container's root is ever reached, as dockerd's
//! `symlink.FollowSymlinkInScope` intends but enforced by the kernel. The last
//! component of a path is handled by `*at` calls on its parent's descriptor.
//! [`Root::follow_in_scope`] gives the resolved path as a string (a symlink's target
//! for `docker cp`'s stat), with dockerd's algorithm.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::PathStat;

/// The most symlinks one resolution follows (dockerd's limit).
const MAX_LINKS: usize = 255;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// An open root directory under which every path is resolved.
pub struct Root {
    fd: OwnedFd,
}

/// A path split as dockerd's `ResolvePath` splits it: the parent resolved in the root,
/// and the last component, not followed.
pub struct Located {
    /// The parent directory.
    pub parent: OwnedFd,
    /// The last component (`.` for a path naming a directory itself: `/`, `dir/`, `dir/.`).
    pub base: Vec<u8>,
    /// Its status, not following a symlink.
    pub stat: Stat,
}

impl Root {
    /// Opens `dir` (following a magic link such as `/proc/<pid>/root`).
    pub fn open(dir: &Path) -> io::Result<Root> {
        let fd = rfs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd })
    }

    /// Opens `path` (absolute in the container, symlinks followed inside the root).
    pub fn open_at(&self, path: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
        let rel = relative(path);
        Ok(rfs::openat2(
            &self.fd,
            OsStr::from_bytes(&rel),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )?)
    }

    /// Opens directory `path` for reading its entries and for `*at` calls.
    pub fn open_dir(&self, path: &[u8]) -> io::Result<OwnedFd> {
        self.open_at(path, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// Finds `path` as dockerd's `ResolvePath` + `Lstat` do: the directory part followed
    /// inside the root, the last component not followed.
    pub fn locate(&self, path: &[u8]) -> io::Result<Located> {
        let (dir, base) = split_last(path);
        let parent = self.open_dir(&dir)?;
        let stat = rfs::statat(&parent, OsStr::from_bytes(&base), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(Located { parent, base, stat })
    }

    /// Docker's stat of `path`, named `name` (the base name of the path as asked).
    pub fn path_stat(&self, path: &[u8]) -> io::Result<(Located, PathStat)> {
        let located = self.locate(path)?;
        let st = &located.stat;
        let link_target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            String::from_utf8_lossy(&self.follow_in_scope(path)?).into_owned()
        } else {
            String::new()
        };
        let stat = PathStat {
            name: base_name(path),
            size: st.st_size,
            mode: go_file_mode(st.st_mode),
            mtime: rfc3339(st.st_mtime, st.st_mtime_nsec as u32),
            link_target,
        };
        Ok((located, stat))
    }

    /// dockerd's `FollowSymlinkInScope`: the absolute path inside the root that `path`
    /// leads to, symlinks followed (at most [`MAX_LINKS`]), `..` stopping at the root,
    /// components that do not exist kept as they are.
    pub fn follow_in_scope(&self, path: &[u8]) -> io::Result<Vec<u8>> {
        let mut done: Vec<Vec<u8>> = Vec::new();
        let mut todo: Vec<u8> = path.to_vec();
        let mut links = 0;
        while !todo.is_empty() {
            let (first, rest) = match todo.iter().position(|b| *b == b'/') {
                Some(i) => (todo[..i].to_vec(), todo[i + 1..].to_vec()),
                None => (std::mem::take(&mut todo), Vec::new()),
            };
            todo = rest;
            match first.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let parent = self.open_at(&join_abs(&done), OFlags::PATH | OFlags::DIRECTORY);
            let target = match parent {
                Ok(dir) => match rfs::readlinkat(&dir, OsStr::from_bytes(&first), Vec::new()) {
                    Ok(t) => Some(t.into_bytes()),
                    Err(Errno::INVAL | Errno::NOENT | Errno::NOTDIR) => None,
                    Err(e) => return Err(e.into()),
                },
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => None,
                Err(e) => return Err(e),
            };
            let Some(target) = target else {
                done.push(first);
                continue;
            };
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            if target.first() == Some(&b'/') {
                done.clear();
            }
            let mut next = target;
            next.push(b'/');
            next.extend_from_slice(&todo);
            todo = next;
        }
        Ok(join_abs(&done))
    }
}

impl AsFd for Root {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `path` relative to the root (no leading `/`; `.` for the root itself).
fn relative(path: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let start = path.iter().position(|b| *b != b'/').unwrap_or(path.len());
        &path[start..]
    };
    if trimmed.is_empty() {
        b".".to_vec()
    } else {
        trimmed.to_vec()
    }
}

/// `/a/b` from `[a, b]`; `/` when empty.
fn join_abs(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Splits `path` into its directory and last component; a path naming a directory
/// itself (`/`, `dir/`) has the last component `.`.
pub fn split_last(path: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) if i + 1 == path.len() => (path.to_vec(), b".".to_vec()),
        Some(i) => (path[..=i].to_vec(), path[i + 1..].to_vec()),
        None if path.is_empty() => (b"/".to_vec(), b".".to_vec()),
        None => (b"/".to_vec(), path.to_vec()),
    }
}

/// Go's `filepath.Base` of the path as asked (`/` for the root).
pub fn base_name(path: &[u8]) -> String {
    let trimmed = {
        let end = path.iter().rposition(|b| *b != b'/').map_or(0, |i| i + 1);
        &path[..end]
    };
    if trimmed.is_empty() {
        return "/".into();
    }
    let start = trimmed
        .iter()
        .rposition(|b| *b == b'/')
        .map_or(0, |i| i + 1);
    String::from_utf8_lossy(&trimmed[start..]).into_owned()
}

/// A Unix `st_mode` as Go's `os.FileMode` bits, as dockerd serialises them.
pub fn go_file_mode(st_mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const NAMED_PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR_DEVICE: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut m = st_mode & 0o777;
    m |= match FileType::from_raw_mode(st_mode) {
        FileType::Directory => DIR,
        FileType::Symlink => SYMLINK,
        FileType::BlockDevice => DEVICE,
        FileType::CharacterDevice => DEVICE | CHAR_DEVICE,
        FileType::Fifo => NAMED_PIPE,
        FileType::Socket => SOCKET,
        _ => 0,
    };
    if st_mode & 0o4000 != 0 {
        m |= SETUID;
    }
    if st_mode & 0o2000 != 0 {
        m |= SETGID;
    }
    if st_mode & 0o1000 != 0 {
        m |= STICKY;
    }
    m
}

/// Seconds and nanoseconds since the epoch as RFC 3339 (UTC, nanoseconds when any).
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    chrono::DateTime::from_timestamp(secs, nanos)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("etc/sub")).unwrap();
        std::fs::write(r.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        symlink("/", r.join("host")).unwrap();
        symlink("../../..", r.join("etc/sub/up")).unwrap();
        symlink("/etc/passwd", r.join("pw")).unwrap();
        symlink("sub", r.join("etc/rel")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        let root = Root::open(r).unwrap();
        (dir, root)
    }

    fn follow(root: &Root, p: &str) -> String {
        String::from_utf8(root.follow_in_scope(p.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let (_dir, root) = tree();
        assert_eq!(follow(&root, "/host"), "/");
        assert_eq!(follow(&root, "/host/etc/passwd"), "/etc/passwd");
        assert_eq!(follow(&root, "/etc/sub/up/etc"), "/etc");
        assert_eq!(follow(&root, "/../../etc/../.."), "/");
        assert_eq!(follow(&root, "/pw"), "/etc/passwd");
        assert_eq!(follow(&root, "/etc/rel/x"), "/etc/sub/x");
        assert_eq!(follow(&root, "/missing/../etc"), "/etc");
        assert!(root.follow_in_scope(b"/loop1").is_err());
    }

    #[test]
    fn opens_never_leave_the_root() {
        let (dir, root) = tree();
        // `/host/etc/passwd` is the container's, not the host's.
        let fd = root.open_at(b"/host/etc/passwd", OFlags::RDONLY).unwrap();
        let st = rfs::fstat(&fd).unwrap();
        let ours = std::fs::metadata(dir.path().join("etc/passwd")).unwrap();
        assert_eq!(st.st_ino, std::os::unix::fs::MetadataExt::ino(&ours));
        let up = root.open_dir(b"/etc/sub/up/../../..").unwrap();
        let top = rfs::fstat(&up).unwrap();
        let r = std::fs::metadata(dir.path()).unwrap();
        assert_eq!(top.st_ino, std::os::unix::fs::MetadataExt::ino(&r));
    }

    #[test]
    fn locate_keeps_the_last_symlink() {
        let (_dir, root) = tree();
        let (located, stat) = root.path_stat(b"/host").unwrap();
        assert_eq!(located.base, b"host");
        assert_eq!(stat.name, "host");
        assert_eq!(stat.link_target, "/");
        assert_eq!(stat.mode & (1 << 27), 1 << 27);
        let (_, stat) = root.path_stat(b"/etc/").unwrap();
        assert_eq!(stat.name, "etc");
        assert_eq!(stat.mode & (1 << 31), 1 << 31);
        assert!(root.path_stat(b"/nope").is_err());
    }

    #[test]
    fn names_and_modes() {
        assert_eq!(split_last(b"/a/b"), (b"/a/".to_vec(), b"b".to_vec()));
        assert_eq!(split_last(b"/a/"), (b"/a/".to_vec(), b".".to_vec()));
        assert_eq!(split_last(b"/"), (b"/".to_vec(), b".".to_vec()));
        assert_eq!(base_name(b"/a/b/"), "b");
        assert_eq!(base_name(b"/"), "/");
        assert_eq!(go_file_mode(0o040755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(0o100644), 0o644);
        assert_eq!(go_file_mode(0o020666), (1 << 26) | (1 << 21) | 0o666);
        assert_eq!(rfc3339(0, 5), "1970-01-01T00:00:00.000000005Z");
    }
}
