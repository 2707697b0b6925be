//! Operations on open files and directories: open, create, read, write, fsync, fallocate,
//! opendir (a snapshot of the entries), and statfs.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;

use fuser::FileAttr;
use rustix::fs::{Mode, OFlags, StatVfs};
use rustix::io::Errno;

use crate::attr::{dirent_type, file_attr};
use crate::resolve::open_in;
use crate::share::{host_perm, io_errno, DirListing, OpResult, ShareFs};

/// The open flags from the guest that are passed on to the host `open`. `O_DIRECT` (the
/// server's buffers are not aligned), `O_NOATIME`, `O_CREAT`/`O_EXCL` (handled apart) and the
/// rest are dropped; `O_APPEND` stays so that every write lands at the host file's real end.
const PASSED_OPEN_FLAGS: i32 =
    libc::O_ACCMODE | libc::O_APPEND | libc::O_TRUNC | libc::O_SYNC | libc::O_DSYNC;

/// The host open flags for guest open flags `flags`, `EROFS` when a `:ro` share is opened for
/// writing or truncation.
fn host_open_flags(flags: i32, read_only: bool) -> OpResult<OFlags> {
    let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
    if read_only && writes {
        return Err(Errno::ROFS);
    }
    let passed = (flags & PASSED_OPEN_FLAGS) as u32;
    // O_NONBLOCK: a special file reached by mistake must never block a worker.
    Ok(OFlags::from_bits_retain(passed) | OFlags::NONBLOCK)
}

/// Reads up to `size` bytes at `offset`, short only at end of file.
fn read_full(file: &File, offset: u64, size: u32) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; size as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

impl ShareFs {
    /// Opens node `ino` (a regular file) and returns the handle.
    pub(crate) fn open_file(&self, ino: u64, flags: i32) -> OpResult<u64> {
        let host_flags = host_open_flags(flags, self.read_only)?;
        let rel = self.path(ino)?;
        let fd = self.open(&rel, host_flags)?;
        Ok(self.add_file(File::from(fd)))
    }

    /// Creates (or, without `O_EXCL`, opens an existing) regular file `name` in `parent`;
    /// a file it created goes to the share's owner with exactly `mode`'s permissions.
    pub(crate) fn create_file(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> OpResult<(FileAttr, u64)> {
        self.refuse_if_read_only()?;
        match mode & libc::S_IFMT {
            0 | libc::S_IFREG => {}
            _ => return Err(Errno::INVAL),
        }
        let host_flags = host_open_flags(flags, false)?;
        let (dir, rel) = self.parent_dir(parent, name)?;
        let perm = host_perm(mode, false);
        let exclusive = host_flags | OFlags::CREATE | OFlags::EXCL;
        let fd = match open_in(dir.as_fd(), name, exclusive, Mode::from_raw_mode(perm)) {
            Ok(fd) => {
                self.adopt(&fd, Some(perm))?;
                fd
            }
            Err(Errno::EXIST) if flags & libc::O_EXCL == 0 => {
                open_in(dir.as_fd(), name, host_flags, Mode::empty())?
            }
            Err(e) => return Err(e),
        };
        let st = rustix::fs::fstat(&fd)?;
        let ino = self.inodes().lookup(&rel);
        let fh = self.add_file(File::from(fd));
        Ok((file_attr(ino, &st), fh))
    }

    pub(crate) fn read(&self, fh: u64, offset: u64, size: u32) -> OpResult<Vec<u8>> {
        let file = self.file(fh)?;
        read_full(&file, offset, size).map_err(|e| io_errno(&e))
    }

    /// Writes all of `data` at `offset` (at the end for a file opened `O_APPEND`).
    pub(crate) fn write(&self, fh: u64, offset: u64, data: &[u8]) -> OpResult<u32> {
        self.refuse_if_read_only()?;
        let file = self.file(fh)?;
        file.write_all_at(data, offset).map_err(|e| io_errno(&e))?;
        u32::try_from(data.len()).map_err(|_| Errno::INVAL)
    }

    pub(crate) fn fsync(&self, fh: u64, data_only: bool) -> OpResult<()> {
        let file = self.file(fh)?;
        if data_only {
            rustix::fs::fdatasync(&*file)
        } else {
            rustix::fs::fsync(&*file)
        }
    }

    pub(crate) fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> OpResult<()> {
        self.refuse_if_read_only()?;
        let file = self.file(fh)?;
        let flags = rustix::fs::FallocateFlags::from_bits_retain(mode as u32);
        rustix::fs::fallocate(&*file, flags, offset, length)
    }

    /// Opens directory node `ino`: its entries are read now, once, so that readdir offsets
    /// stay valid while the directory changes.
    pub(crate) fn open_dir(&self, ino: u64) -> OpResult<u64> {
        let rel = self.path(ino)?;
        let dir = self.open(&rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut entries = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir)? {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            entries.push((name.to_os_string(), dirent_type(entry.file_type())));
        }
        Ok(self.add_dir(DirListing { dir, entries }))
    }

    pub(crate) fn fsync_dir(&self, fh: u64) -> OpResult<()> {
        rustix::fs::fsync(&self.dir(fh)?.dir)
    }

    pub(crate) fn statfs(&self) -> OpResult<StatVfs> {
        rustix::fs::fstatvfs(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_shares_refuse_opening_for_writing() {
        assert!(host_open_flags(libc::O_RDONLY, true).is_ok());
        for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC] {
            assert_eq!(host_open_flags(flags, true).err(), Some(Errno::ROFS));
        }
        assert!(host_open_flags(libc::O_RDWR, false).is_ok());
    }

    #[test]
    fn only_plain_flags_reach_the_host() {
        let flags = host_open_flags(
            libc::O_WRONLY | libc::O_APPEND | libc::O_DIRECT | libc::O_NOATIME | libc::O_CREAT,
            false,
        )
        .expect("flags");
        assert!(flags.contains(OFlags::WRONLY | OFlags::APPEND));
        assert!(!flags.intersects(OFlags::DIRECT | OFlags::NOATIME | OFlags::CREATE));
    }
}
