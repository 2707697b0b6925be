//! Operations on names and attributes: getattr, setattr, readlink, mknod, mkdir, unlink,
//! rmdir, symlink, rename, link.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::Path;

use fuser::{FileAttr, RenameFlags, TimeOrNow};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, CWD};
use rustix::io::Errno;

use crate::attr::{file_attr, timespec};
use crate::resolve::{open_in, open_parent, proc_fd_path};
use crate::share::{host_perm, OpResult, ShareFs};

/// What `setattr` asked to change. Owner and group are not here: see [`ShareFs::set_attr`].
pub(crate) struct AttrChanges {
    pub(crate) mode: Option<u32>,
    pub(crate) size: Option<u64>,
    pub(crate) atime: Option<TimeOrNow>,
    pub(crate) mtime: Option<TimeOrNow>,
    /// The open file the change came through (`ftruncate` on it), if any.
    pub(crate) fh: Option<u64>,
    /// Whether a new owner or group was asked for (accepted as a no-op, refused on `:ro`).
    pub(crate) chown: bool,
}

impl AttrChanges {
    fn is_empty(&self) -> bool {
        self.mode.is_none() && self.size.is_none() && self.atime.is_none() && self.mtime.is_none()
    }
}

impl ShareFs {
    /// Attributes of node `ino`, through its open file when `fh` names one (an unlinked but
    /// open file still answers).
    pub(crate) fn get_attr(&self, ino: u64, fh: Option<u64>) -> OpResult<FileAttr> {
        if let Some(file) = fh.and_then(|fh| self.file(fh).ok()) {
            return Ok(file_attr(ino, &rustix::fs::fstat(&*file)?));
        }
        let rel = self.path(ino)?;
        Ok(file_attr(ino, &self.stat(&rel)?))
    }

    /// `setattr`: mode, size and times are applied on the host.
    ///
    /// Owner and group changes (`chown` in the guest) are accepted and ignored: everything
    /// the container writes belongs on the host to the share's owner, and attributes always
    /// report the host's real owner, so a later `stat` shows the owner unchanged.
    pub(crate) fn set_attr(&self, ino: u64, changes: &AttrChanges) -> OpResult<FileAttr> {
        let rel = self.path(ino)?;
        let target = self.open(&rel, OFlags::PATH)?;
        if changes.chown || !changes.is_empty() {
            self.refuse_if_read_only()?;
        }
        let st = rustix::fs::fstat(&target)?;
        let kind = FileType::from_raw_mode(st.st_mode);
        let is_link = kind == FileType::Symlink;
        if let Some(mode) = changes.mode {
            if is_link {
                return Err(Errno::OPNOTSUPP);
            }
            let perm = host_perm(mode, kind == FileType::Directory);
            rustix::fs::chmodat(
                CWD,
                proc_fd_path(&target),
                Mode::from_raw_mode(perm),
                AtFlags::empty(),
            )?;
        }
        if let Some(size) = changes.size {
            match changes.fh.and_then(|fh| self.file(fh).ok()) {
                Some(file) => rustix::fs::ftruncate(&*file, size)?,
                None => {
                    if kind != FileType::RegularFile {
                        return Err(if kind == FileType::Directory {
                            Errno::ISDIR
                        } else {
                            Errno::INVAL
                        });
                    }
                    let file = self.open(&rel, OFlags::WRONLY | OFlags::NONBLOCK)?;
                    rustix::fs::ftruncate(&file, size)?;
                }
            }
        }
        if changes.atime.is_some() || changes.mtime.is_some() {
            let times = Timestamps {
                last_access: timespec(changes.atime),
                last_modification: timespec(changes.mtime),
            };
            if is_link {
                let (dir, name) = open_parent(self.root.as_fd(), &rel)?;
                rustix::fs::utimensat(&dir, &name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
            } else {
                rustix::fs::utimensat(CWD, proc_fd_path(&target), &times, AtFlags::empty())?;
            }
        }
        Ok(file_attr(ino, &rustix::fs::fstat(&target)?))
    }

    /// The target of symlink node `ino`, as stored (never resolved).
    pub(crate) fn read_link(&self, ino: u64) -> OpResult<Vec<u8>> {
        let rel = self.path(ino)?;
        let (dir, name) = open_parent(self.root.as_fd(), &rel).map_err(|e| match e {
            Errno::BUSY => Errno::INVAL,
            other => other,
        })?;
        Ok(rustix::fs::readlinkat(&dir, &name, Vec::new())?.into_bytes())
    }

    /// `mknod`: regular files, FIFOs and sockets. Device nodes are refused (`EPERM`): they
    /// would land on the host owned by the share's owner.
    pub(crate) fn make_node(&self, parent: u64, name: &OsStr, mode: u32) -> OpResult<FileAttr> {
        self.refuse_if_read_only()?;
        let kind = match mode & libc::S_IFMT {
            0 | libc::S_IFREG => FileType::RegularFile,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            libc::S_IFCHR | libc::S_IFBLK => return Err(Errno::PERM),
            _ => return Err(Errno::INVAL),
        };
        let (dir, rel) = self.parent_dir(parent, name)?;
        let perm = host_perm(mode, false);
        rustix::fs::mknodat(&dir, name, kind, Mode::from_raw_mode(perm), 0)?;
        let node = open_in(dir.as_fd(), name, OFlags::PATH, Mode::empty())?;
        self.adopt(&node, Some(perm))?;
        self.entry(&rel)
    }

    pub(crate) fn make_dir(&self, parent: u64, name: &OsStr, mode: u32) -> OpResult<FileAttr> {
        self.refuse_if_read_only()?;
        let (dir, rel) = self.parent_dir(parent, name)?;
        let perm = host_perm(mode, true);
        rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(perm))?;
        let node = open_in(
            dir.as_fd(),
            name,
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        )?;
        self.adopt(&node, Some(perm))?;
        self.entry(&rel)
    }

    /// `unlink` (files, symlinks...) or `rmdir` (`directory`).
    pub(crate) fn remove(&self, parent: u64, name: &OsStr, directory: bool) -> OpResult<()> {
        self.refuse_if_read_only()?;
        let (dir, rel) = self.parent_dir(parent, name)?;
        let flags = if directory {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(&dir, name, flags)?;
        self.inodes().detach(&rel);
        Ok(())
    }

    /// A symlink `name` → `target`. The target is stored as given: the guest resolves it in
    /// the container; the server never follows it.
    pub(crate) fn make_symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &Path,
    ) -> OpResult<FileAttr> {
        self.refuse_if_read_only()?;
        let (dir, rel) = self.parent_dir(parent, name)?;
        rustix::fs::symlinkat(target, &dir, name)?;
        let node = open_in(dir.as_fd(), name, OFlags::PATH, Mode::empty())?;
        self.adopt(&node, None)?;
        self.entry(&rel)
    }

    /// `rename`, with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`; the inode table follows
    /// (descendants of a moved directory too).
    pub(crate) fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> OpResult<()> {
        self.refuse_if_read_only()?;
        let supported = RenameFlags::RENAME_NOREPLACE | RenameFlags::RENAME_EXCHANGE;
        if !supported.contains(flags) {
            return Err(Errno::INVAL);
        }
        let (from_dir, from) = self.parent_dir(parent, name)?;
        let (to_dir, to) = self.parent_dir(new_parent, new_name)?;
        rustix::fs::renameat_with(
            &from_dir,
            name,
            &to_dir,
            new_name,
            rustix::fs::RenameFlags::from_bits_retain(flags.bits()),
        )?;
        let mut inodes = self.inodes();
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            inodes.exchange(&from, &to);
        } else {
            inodes.rename(&from, &to);
        }
        Ok(())
    }

    /// A hard link to node `ino` at `new_name` in `new_parent` (a symlink is linked itself).
    pub(crate) fn link(&self, ino: u64, new_parent: u64, new_name: &OsStr) -> OpResult<FileAttr> {
        self.refuse_if_read_only()?;
        let rel = self.path(ino)?;
        let (src_dir, src_name) = open_parent(self.root.as_fd(), &rel)?;
        let (dst_dir, dst) = self.parent_dir(new_parent, new_name)?;
        rustix::fs::linkat(&src_dir, &src_name, &dst_dir, new_name, AtFlags::empty())?;
        self.entry(&dst)
    }

    /// `access`: existence, and `EROFS` for write access on a `:ro` share. Permission bits
    /// are the guest kernel's business (`default_permissions`).
    pub(crate) fn access(&self, ino: u64, mask: i32) -> OpResult<()> {
        let rel = self.path(ino)?;
        self.stat(&rel)?;
        if mask & libc::W_OK != 0 {
            self.refuse_if_read_only()?;
        }
        Ok(())
    }
}
