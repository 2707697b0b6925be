//! The `fuser::Filesystem` face of a share: decodes each request, calls the operation on
//! [`ShareFs`], and replies. No guest input can panic here: every failure is an errno.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use rustix::io::Errno;

use crate::attr::file_attr;
use crate::inodes::ROOT_INO;
use crate::ops_entries::AttrChanges;
use crate::share::{OpResult, ShareFs};

/// How long the guest kernel may trust an entry or attributes: not at all. Every stat and
/// path walk asks the host again, so host-side changes are seen at once.
pub(crate) const TTL: Duration = Duration::ZERO;

/// The largest write the guest sends in one request (the daemon sizes its buffers for it).
pub(crate) const MAX_WRITE: u32 = 128 * 1024;

const GENERATION: Generation = Generation(0);

/// Open files use the guest's page cache, dropped at every open (no `FOPEN_KEEP_CACHE`)
/// and whenever the host's size or mtime changed (`FUSE_AUTO_INVAL_DATA` with TTL 0).
const OPEN_FLAGS: FopenFlags = FopenFlags::empty();

fn errno(e: Errno) -> fuser::Errno {
    fuser::Errno::from_i32(e.raw_os_error())
}

fn reply_entry(reply: ReplyEntry, result: OpResult<fuser::FileAttr>) {
    match result {
        Ok(attr) => reply.entry(&TTL, &attr, GENERATION),
        Err(e) => reply.error(errno(e)),
    }
}

fn reply_empty(reply: ReplyEmpty, result: OpResult<()>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

impl Filesystem for ShareFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(nearest) = config.set_max_write(MAX_WRITE) {
            let _ = config.set_max_write(nearest.min(MAX_WRITE));
        }
        for wanted in [
            InitFlags::FUSE_AUTO_INVAL_DATA,
            InitFlags::FUSE_DO_READDIRPLUS,
        ] {
            if config.add_capabilities(wanted).is_err() {
                tracing::debug!(?wanted, "file share: the kernel lacks a FUSE capability");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let result = self.child(parent.0, name).and_then(|rel| self.entry(&rel));
        reply_entry(reply, result);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.inodes().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.get_attr(ino.0, fh.map(|fh| fh.0)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let changes = AttrChanges {
            mode,
            size,
            atime,
            mtime,
            fh: fh.map(|fh| fh.0),
            chown: uid.is_some() || gid.is_some(),
        };
        match self.set_attr(ino.0, &changes) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.read_link(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply_entry(reply, self.make_node(parent.0, name, mode));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply_entry(reply, self.make_dir(parent.0, name, mode));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.remove(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.remove(parent.0, name, true));
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        reply_entry(reply, self.make_symlink(parent.0, link_name, target));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            ShareFs::rename(self, parent.0, name, newparent.0, newname, flags),
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply_entry(reply, ShareFs::link(self, ino.0, newparent.0, newname));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.open_file(ino.0, flags.0) {
            Ok(fh) => reply.opened(FileHandle(fh), OPEN_FLAGS),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match ShareFs::read(self, fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match ShareFs::write(self, fh.0, offset, data) {
            Ok(written) => reply.written(written),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes go straight to the host file: nothing is buffered here.
        reply_empty(reply, self.file(fh.0).map(drop));
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.remove_file(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, ShareFs::fsync(self, fh.0, datasync));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.open_dir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listing = match self.dir(fh.0) {
            Ok(listing) => listing,
            Err(e) => return reply.error(errno(e)),
        };
        let rel = match self.path(ino.0) {
            Ok(rel) => rel,
            Err(e) => return reply.error(errno(e)),
        };
        let parent_ino = rel
            .parent()
            .and_then(|p| self.inodes().ino_of(p))
            .unwrap_or(ROOT_INO);
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let dots = [(".", ino.0), ("..", parent_ino)];
        for (index, (name, dot_ino)) in dots.iter().enumerate().skip(start) {
            let next = index as u64 + 1;
            if reply.add(INodeNo(*dot_ino), next, fuser::FileType::Directory, name) {
                return reply.ok();
            }
        }
        let skip = start.saturating_sub(dots.len());
        for (i, (name, kind)) in listing.entries.iter().enumerate().skip(skip) {
            // Plain READDIR takes no reference: ids are reported for `ls -i` and the like.
            let child_ino = self.inodes().ino_or_insert(&rel.join(name));
            let next = (dots.len() + i) as u64 + 1;
            if reply.add(INodeNo(child_ino), next, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let listing = match self.dir(fh.0) {
            Ok(listing) => listing,
            Err(e) => return reply.error(errno(e)),
        };
        let rel = match self.path(ino.0) {
            Ok(rel) => rel,
            Err(e) => return reply.error(errno(e)),
        };
        let dir_stat = match rustix::fs::fstat(&listing.dir) {
            Ok(st) => st,
            Err(e) => return reply.error(errno(e)),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        // The kernel takes no reference for `.` and `..`; their attributes are the directory's.
        let dot_attr = file_attr(ino.0, &dir_stat);
        for (index, name) in [".", ".."].iter().enumerate().skip(start) {
            if reply.add(
                INodeNo(ino.0),
                index as u64 + 1,
                name,
                &TTL,
                &dot_attr,
                GENERATION,
            ) {
                return reply.ok();
            }
        }
        let skip = start.saturating_sub(2);
        for (i, (name, _kind)) in listing.entries.iter().enumerate().skip(skip) {
            let next = (2 + i) as u64 + 1;
            let flags = rustix::fs::AtFlags::SYMLINK_NOFOLLOW;
            // An entry removed since opendir is left out.
            let Ok(st) = rustix::fs::statat(&listing.dir, name.as_os_str(), flags) else {
                continue;
            };
            let mut inodes = self.inodes();
            // Each entry handed over counts as a lookup; one that did not fit is given back.
            let child_ino = inodes.lookup(&rel.join(name));
            let attr = file_attr(child_ino, &st);
            if reply.add(INodeNo(child_ino), next, name, &TTL, &attr, GENERATION) {
                inodes.forget(child_ino, 1);
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.remove_dir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.fsync_dir(fh.0));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match ShareFs::statfs(self) {
            Ok(st) => reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                u32::try_from(st.f_bsize).unwrap_or(4096),
                u32::try_from(st.f_namemax).unwrap_or(255),
                u32::try_from(st.f_frsize).unwrap_or(4096),
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let refusal = if self.read_only {
            Errno::ROFS
        } else {
            Errno::OPNOTSUPP
        };
        reply.error(errno(refusal));
    }

    /// Extended attributes are not served: every name is absent.
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(errno(Errno::NODATA));
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        let refusal = if self.read_only {
            Errno::ROFS
        } else {
            Errno::NODATA
        };
        reply.error(errno(refusal));
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        reply_empty(reply, ShareFs::access(self, ino.0, mask.bits()));
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.create_file(parent.0, name, mode, flags) {
            Ok((attr, fh)) => reply.created(&TTL, &attr, GENERATION, FileHandle(fh), OPEN_FLAGS),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, ShareFs::fallocate(self, fh.0, offset, length, mode));
    }
}
