//! Directory handles confined beneath a root directory.
//!
//! Every path is resolved relative to the root's file descriptor, with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` where the kernel has it
//! (symlinks inside the root are followed, any resolution that would leave the
//! root fails with `EXDEV`), or else component by component with `O_NOFOLLOW`
//! (any symlink in a parent path fails with `ELOOP`/`ENOTDIR`). The last
//! component of an entry is always handled by an `*at` call on its parent's
//! descriptor, never by a path, so nothing is written through a symlink.

use std::cell::Cell;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How parent directories are resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2(RESOLVE_BENEATH)` when available, else [`Resolver::ComponentWalk`].
    #[default]
    Auto,
    /// One `openat(O_NOFOLLOW)` per component: symlinks in parent paths are refused.
    ComponentWalk,
}

/// An open root directory under which all operations stay.
pub(crate) struct Beneath {
    root: OwnedFd,
    use_openat2: Cell<bool>,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

impl Beneath {
    /// Opens `root` (which must be a real directory, not a symlink).
    pub(crate) fn open(root: &Path, resolver: Resolver) -> io::Result<Self> {
        let fd = rfs::open(root, DIR_FLAGS, Mode::empty())?;
        Ok(Beneath {
            root: fd,
            use_openat2: Cell::new(resolver == Resolver::Auto),
        })
    }

    /// A new descriptor for the root itself.
    pub(crate) fn root_dir(&self) -> io::Result<OwnedFd> {
        Ok(rfs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?)
    }

    /// Opens the directory at `components` (relative to the root), refusing
    /// any resolution that leaves the root.
    pub(crate) fn open_dir(&self, components: &[&[u8]]) -> io::Result<OwnedFd> {
        if components.is_empty() {
            return self.root_dir();
        }
        if self.use_openat2.get() {
            let joined = components.join(&b'/');
            match rfs::openat2(
                &self.root,
                OsStr::from_bytes(&joined),
                DIR_FLAGS.difference(OFlags::NOFOLLOW),
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(Errno::NOSYS) => self.use_openat2.set(false),
                other => return Ok(other?),
            }
        }
        let mut dir = self.root_dir()?;
        for component in components {
            dir = rfs::openat(&dir, OsStr::from_bytes(component), DIR_FLAGS, Mode::empty())?;
        }
        Ok(dir)
    }

    /// Opens the directory at `components`, creating missing directories (mode 0755, root-owned).
    pub(crate) fn open_dir_creating(&self, components: &[&[u8]]) -> io::Result<OwnedFd> {
        match self.open_dir(components) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let mut dir = self.root_dir()?;
        for i in 0..components.len() {
            dir = match self.open_dir(&components[..=i]) {
                Ok(next) => next,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let name = OsStr::from_bytes(components[i]);
                    match rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    self.open_dir(&components[..=i])?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(dir)
    }
}

/// What is at `name` in `dir`, without following a symlink; `None` if nothing.
pub(crate) fn file_type_at(dir: impl AsFd, name: &OsStr) -> io::Result<Option<rfs::FileType>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(rfs::FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes whatever is at `name` in `dir` (a whole tree for a directory), never following symlinks.
pub(crate) fn remove_at(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    let dir = dir.as_fd();
    match file_type_at(dir, name)? {
        None => Ok(()),
        Some(rfs::FileType::Directory) => {
            let sub = rfs::openat(dir, name, DIR_FLAGS, Mode::empty())?;
            remove_children(&sub)?;
            Ok(rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
        }
        Some(_) => Ok(rfs::unlinkat(dir, name, AtFlags::empty())?),
    }
}

/// Removes everything inside the directory `dir`.
fn remove_children(dir: &OwnedFd) -> io::Result<()> {
    let mut names = Vec::new();
    let mut reader = rfs::Dir::read_from(dir)?;
    while let Some(entry) = reader.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    for name in names {
        remove_at(dir, OsStr::from_bytes(&name))?;
    }
    Ok(())
}
