//! The state of one served share and the helpers every operation uses: node paths, confined
//! opens, stat, and giving new files to the share's owner.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use fuser::FileAttr;
use rustix::fs::{AtFlags, Gid, Mode, OFlags, Stat, Uid, CWD};
use rustix::io::Errno;

use crate::attr::file_attr;
use crate::inodes::InodeTable;
use crate::resolve::{check_name, open_beneath, proc_fd_path};
use crate::{ShareError, ShareOptions};

/// What an operation answers: a value, or the errno the guest sees.
pub(crate) type OpResult<T> = Result<T, Errno>;

/// An open directory: its entries as read at `opendir` (so offsets stay stable), and the
/// directory itself for `readdirplus`'s per-entry stat.
pub(crate) struct DirListing {
    pub(crate) dir: OwnedFd,
    pub(crate) entries: Vec<(OsString, fuser::FileType)>,
}

/// One served share.
pub(crate) struct ShareFs {
    /// The shared directory, `O_PATH`: every path is resolved beneath it.
    pub(crate) root: OwnedFd,
    /// Owner of the root directory: new files and directories are given to them.
    pub(crate) owner_uid: u32,
    pub(crate) owner_gid: u32,
    pub(crate) read_only: bool,
    inodes: Mutex<InodeTable>,
    files: Mutex<HashMap<u64, Arc<File>>>,
    dirs: Mutex<HashMap<u64, Arc<DirListing>>>,
    next_handle: AtomicU64,
}

/// Locks `mutex`, carrying on past a poisoned lock (a panicking worker must not take the
/// whole share down; the tables stay consistent between statements).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A std I/O error as an errno.
pub(crate) fn io_errno(error: &std::io::Error) -> Errno {
    Errno::from_io_error(error).unwrap_or(Errno::IO)
}

/// A requested permission mode as created on the host: permission bits only, and never
/// set-user-ID or set-group-ID on a non-directory. (Files land owned by the share's owner;
/// a guest must not be able to leave set-ID programs of theirs on the host.)
pub(crate) fn host_perm(mode: u32, is_dir: bool) -> u32 {
    let perm = mode & 0o7777;
    if is_dir {
        perm
    } else {
        perm & !(libc::S_ISUID | libc::S_ISGID)
    }
}

impl ShareFs {
    /// Opens the share's root: it must exist and be a directory.
    pub(crate) fn new(options: &ShareOptions) -> Result<Self, ShareError> {
        let root_error = |source: std::io::Error| ShareError::Root {
            path: options.root.clone(),
            source,
        };
        let root = rustix::fs::open(
            &options.root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            if e == Errno::NOTDIR {
                ShareError::NotADirectory(options.root.clone())
            } else {
                root_error(e.into())
            }
        })?;
        let st = rustix::fs::fstat(&root).map_err(|e| root_error(e.into()))?;
        Ok(Self {
            root,
            owner_uid: st.st_uid,
            owner_gid: st.st_gid,
            read_only: options.read_only,
            inodes: Mutex::new(InodeTable::new()),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
        })
    }

    pub(crate) fn inodes(&self) -> MutexGuard<'_, InodeTable> {
        lock(&self.inodes)
    }

    /// `EROFS` for a `:ro` share.
    pub(crate) fn refuse_if_read_only(&self) -> OpResult<()> {
        if self.read_only {
            Err(Errno::ROFS)
        } else {
            Ok(())
        }
    }

    /// The relative path of node `ino` (`ENOENT` once forgotten or detached).
    pub(crate) fn path(&self, ino: u64) -> OpResult<PathBuf> {
        self.inodes()
            .path(ino)
            .map(Path::to_path_buf)
            .ok_or(Errno::NOENT)
    }

    /// The relative path of `name` in directory node `parent`, the name checked.
    pub(crate) fn child(&self, parent: u64, name: &OsStr) -> OpResult<PathBuf> {
        check_name(name)?;
        Ok(self.path(parent)?.join(name))
    }

    /// Directory node `parent` opened `O_PATH` beneath the root, with the checked path of
    /// `name` in it.
    pub(crate) fn parent_dir(&self, parent: u64, name: &OsStr) -> OpResult<(OwnedFd, PathBuf)> {
        let rel = self.child(parent, name)?;
        let dir_rel = rel.parent().unwrap_or(Path::new(""));
        let dir = self.open(dir_rel, OFlags::PATH | OFlags::DIRECTORY)?;
        Ok((dir, rel))
    }

    /// Opens `rel` beneath the root (never following a symlink).
    pub(crate) fn open(&self, rel: &Path, flags: OFlags) -> OpResult<OwnedFd> {
        open_beneath(self.root.as_fd(), rel, flags, Mode::empty())
    }

    /// `lstat` of `rel`, beneath the root.
    pub(crate) fn stat(&self, rel: &Path) -> OpResult<Stat> {
        let fd = self.open(rel, OFlags::PATH)?;
        rustix::fs::fstat(&fd)
    }

    /// The attributes of `rel`, counting one kernel reference to its node (for replies that
    /// hand the kernel an entry: lookup, create, mkdir...).
    pub(crate) fn entry(&self, rel: &Path) -> OpResult<FileAttr> {
        let st = self.stat(rel)?;
        let ino = self.inodes().lookup(rel);
        Ok(file_attr(ino, &st))
    }

    /// Gives a node the container just created to the share's owner and sets its exact
    /// permissions (the daemon's umask must not change them; the kernel already applied the
    /// guest's). `node` is an fd of the new node itself (`O_PATH` is enough); `perm` is
    /// `None` for a symlink. A daemon that may not chown (not root) leaves its own owner.
    pub(crate) fn adopt(&self, node: &OwnedFd, perm: Option<u32>) -> OpResult<()> {
        let st = rustix::fs::fstat(node)?;
        if st.st_uid != self.owner_uid || st.st_gid != self.owner_gid {
            let owned = rustix::fs::chownat(
                node,
                "",
                Some(Uid::from_raw(self.owner_uid)),
                Some(Gid::from_raw(self.owner_gid)),
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            );
            match owned {
                Ok(()) => {}
                Err(Errno::PERM) => tracing::warn!(
                    uid = self.owner_uid,
                    gid = self.owner_gid,
                    "file share: cannot give a new file to the share's owner (daemon not root?)"
                ),
                Err(e) => return Err(e),
            }
        }
        if let Some(perm) = perm {
            rustix::fs::chmodat(
                CWD,
                proc_fd_path(node),
                Mode::from_raw_mode(perm),
                AtFlags::empty(),
            )?;
        }
        Ok(())
    }

    fn new_handle(&self) -> u64 {
        self.next_handle.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn add_file(&self, file: File) -> u64 {
        let fh = self.new_handle();
        lock(&self.files).insert(fh, Arc::new(file));
        fh
    }

    /// The open file behind handle `fh` (`EBADF` if there is none).
    pub(crate) fn file(&self, fh: u64) -> OpResult<Arc<File>> {
        lock(&self.files).get(&fh).cloned().ok_or(Errno::BADF)
    }

    pub(crate) fn remove_file(&self, fh: u64) {
        lock(&self.files).remove(&fh);
    }

    pub(crate) fn add_dir(&self, listing: DirListing) -> u64 {
        let fh = self.new_handle();
        lock(&self.dirs).insert(fh, Arc::new(listing));
        fh
    }

    pub(crate) fn dir(&self, fh: u64) -> OpResult<Arc<DirListing>> {
        lock(&self.dirs).get(&fh).cloned().ok_or(Errno::BADF)
    }

    pub(crate) fn remove_dir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_id_bits_are_dropped_on_files_only() {
        assert_eq!(host_perm(0o104755, false), 0o755);
        assert_eq!(host_perm(0o2775, true), 0o2775);
        assert_eq!(host_perm(0o1777, false), 0o1777);
    }

    #[test]
    fn the_root_must_be_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").expect("file");
        let err = ShareFs::new(&ShareOptions {
            root: file,
            read_only: false,
        })
        .err();
        assert!(matches!(err, Some(ShareError::NotADirectory(_))), "{err:?}");
        let err = ShareFs::new(&ShareOptions {
            root: dir.path().join("missing"),
            read_only: false,
        })
        .err();
        assert!(matches!(err, Some(ShareError::Root { .. })), "{err:?}");
        assert!(ShareFs::new(&ShareOptions {
            root: dir.path().to_path_buf(),
            read_only: true,
        })
        .is_ok());
    }
}
