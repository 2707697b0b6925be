//! Confinement: every path the server touches is resolved beneath the share root.
//!
//! Paths are relative to an fd of the root and opened with `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS` plus `O_NOFOLLOW`: no
//! `..`, absolute path, symlink (in any component, the last one included unless opened as
//! `O_PATH` to the link itself) or `/proc` magic link can lead out, even if the host swaps a
//! directory for a symlink between two calls. Work on a final component is done with `*at`
//! calls on a parent fd opened this way and a single checked name, without following it.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How every path beneath the root is resolved.
pub(crate) const RESOLVE_CONFINED: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// How many times an `openat2` that answered `EAGAIN` (a concurrent rename seen by
/// `RESOLVE_BENEATH`'s checks) is tried again.
const EAGAIN_RETRIES: usize = 8;

/// Checks a single name from the kernel: not empty, not `.` or `..`, no `/` or NUL.
pub(crate) fn check_name(name: &OsStr) -> Result<&OsStr, Errno> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." {
        return Err(Errno::INVAL);
    }
    if bytes.contains(&b'/') || bytes.contains(&0) {
        return Err(Errno::INVAL);
    }
    if bytes.len() > 255 {
        return Err(Errno::NAMETOOLONG);
    }
    Ok(name)
}

/// Checks a relative path: only plain names (the empty path is the root itself).
pub(crate) fn check_relative(rel: &Path) -> Result<(), Errno> {
    for component in rel.components() {
        match component {
            Component::Normal(_) => {}
            // `..`, `/` and prefixes never come from our own table; refuse them outright.
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Errno::ACCESS)
            }
            Component::CurDir => return Err(Errno::INVAL),
        }
    }
    Ok(())
}

/// Opens `rel` beneath `root` with `flags` (`O_NOFOLLOW | O_CLOEXEC` are always added), never
/// leaving the root and never following a symlink. `EXDEV` (an escape attempt) is answered
/// `EACCES`; a symlink on the way answers `ELOOP`.
pub(crate) fn open_beneath(
    root: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    check_relative(rel)?;
    let path: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    open_confined(root, path, flags, mode)
}

/// Opens the single name `name` in the directory `dir` (itself opened beneath the root),
/// with the same confinement as [`open_beneath`].
pub(crate) fn open_in(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    check_name(name)?;
    open_confined(dir, Path::new(name), flags, mode)
}

fn open_confined(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir, path, flags, mode, RESOLVE_CONFINED) {
            Err(Errno::AGAIN) if tries < EAGAIN_RETRIES => tries += 1,
            Err(Errno::XDEV) => return Err(Errno::ACCESS),
            other => return other,
        }
    }
}

/// The parent directory of `rel` (opened `O_PATH` beneath the root) and `rel`'s last name.
/// The root itself has no parent here: `EBUSY`.
pub(crate) fn open_parent(root: BorrowedFd<'_>, rel: &Path) -> Result<(OwnedFd, OsString), Errno> {
    let name = rel.file_name().ok_or(Errno::BUSY)?;
    check_name(name)?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    let dir = open_beneath(
        root,
        parent,
        OFlags::PATH | OFlags::DIRECTORY,
        Mode::empty(),
    )?;
    Ok((dir, name.to_os_string()))
}

/// A path naming exactly the object behind `fd` (for calls that have no `AT_EMPTY_PATH`
/// form, like `chmod`, on an `O_PATH` fd): `/proc/self/fd/N`. The kernel jumps straight to
/// the open object, so nothing is resolved by name.
pub(crate) fn proc_fd_path(fd: &impl AsFd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn share() -> (tempfile::TempDir, tempfile::TempDir, OwnedFd) {
        let outside = tempfile::tempdir().expect("outside dir");
        std::fs::write(outside.path().join("file"), b"secret").expect("outside file");
        let root = tempfile::tempdir().expect("share dir");
        std::fs::create_dir(root.path().join("dir")).expect("dir");
        std::fs::write(root.path().join("dir/inner"), b"ok").expect("inner");
        symlink(outside.path(), root.path().join("esc")).expect("esc link");
        symlink("../..", root.path().join("up")).expect("up link");
        symlink("/etc/passwd", root.path().join("passwd")).expect("passwd link");
        symlink("dir", root.path().join("dirlink")).expect("dir link");
        let fd = rustix::fs::open(
            root.path(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("root fd");
        (outside, root, fd)
    }

    fn open_ro(root: &OwnedFd, rel: &str) -> Result<OwnedFd, Errno> {
        open_beneath(root.as_fd(), Path::new(rel), OFlags::RDONLY, Mode::empty())
    }

    #[test]
    fn plain_paths_open() {
        let (_outside, _root, fd) = share();
        assert!(open_ro(&fd, "dir/inner").is_ok());
        assert!(open_ro(&fd, "").is_ok(), "the empty path is the root");
    }

    #[test]
    fn a_symlinked_directory_leading_out_is_not_traversed() {
        let (_outside, _root, fd) = share();
        assert_eq!(open_ro(&fd, "esc/file").err(), Some(Errno::LOOP));
        assert_eq!(open_ro(&fd, "up/etc/passwd").err(), Some(Errno::LOOP));
        // Even a symlink that stays inside is not followed by the server.
        assert_eq!(open_ro(&fd, "dirlink/inner").err(), Some(Errno::LOOP));
    }

    #[test]
    fn a_final_symlink_is_never_followed() {
        let (_outside, _root, fd) = share();
        assert_eq!(open_ro(&fd, "passwd").err(), Some(Errno::LOOP));
        assert_eq!(open_ro(&fd, "esc").err(), Some(Errno::LOOP));
        // As O_PATH it is the link itself.
        let link = open_beneath(fd.as_fd(), Path::new("passwd"), OFlags::PATH, Mode::empty())
            .expect("O_PATH on the link");
        let st = rustix::fs::fstat(&link).expect("fstat");
        assert_eq!(
            rustix::fs::FileType::from_raw_mode(st.st_mode),
            rustix::fs::FileType::Symlink
        );
    }

    #[test]
    fn dotdot_and_absolute_paths_are_refused() {
        let (_outside, _root, fd) = share();
        assert_eq!(open_ro(&fd, "../x").err(), Some(Errno::ACCESS));
        assert_eq!(open_ro(&fd, "dir/../../x").err(), Some(Errno::ACCESS));
        assert_eq!(open_ro(&fd, "/etc/passwd").err(), Some(Errno::ACCESS));
    }

    #[test]
    fn openat2_itself_refuses_dotdot() {
        // Past our own component check, the kernel's RESOLVE_BENEATH still holds.
        let (_outside, _root, fd) = share();
        assert_eq!(
            open_confined(fd.as_fd(), Path::new("../x"), OFlags::RDONLY, Mode::empty()).err(),
            Some(Errno::ACCESS)
        );
        assert_eq!(
            open_confined(
                fd.as_fd(),
                Path::new("/proc/self/root/etc/passwd"),
                OFlags::RDONLY,
                Mode::empty()
            )
            .err(),
            Some(Errno::ACCESS)
        );
    }

    #[test]
    fn kernel_names_are_checked() {
        for bad in ["", ".", "..", "a/b", "/", "a\0b"] {
            assert!(check_name(OsStr::new(bad)).is_err(), "{bad:?}");
        }
        assert!(check_name(OsStr::new("...")).is_ok());
        assert!(check_name(OsStr::new(&"x".repeat(256))).is_err());
        let (_outside, _root, fd) = share();
        assert!(open_in(fd.as_fd(), OsStr::new(".."), OFlags::PATH, Mode::empty()).is_err());
    }

    #[test]
    fn parents_are_opened_beneath_the_root() {
        let (_outside, _root, fd) = share();
        let (dir, name) = open_parent(fd.as_fd(), Path::new("dir/inner")).expect("parent");
        assert_eq!(name, "inner");
        assert!(rustix::fs::statat(&dir, &name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok());
        // The parent `esc` is a symlink: opened as the link itself, it is no directory.
        assert_eq!(
            open_parent(fd.as_fd(), Path::new("esc/file")).err(),
            Some(Errno::NOTDIR)
        );
        assert_eq!(
            open_parent(fd.as_fd(), Path::new("esc/sub/file")).err(),
            Some(Errno::LOOP)
        );
        assert_eq!(
            open_parent(fd.as_fd(), Path::new("")).err(),
            Some(Errno::BUSY)
        );
    }
}
