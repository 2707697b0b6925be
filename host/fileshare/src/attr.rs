//! Host `stat` results as FUSE attributes, and FUSE times as host timestamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo, TimeOrNow};
use rustix::fs::{Stat, Timespec, UTIME_NOW, UTIME_OMIT};

/// The FUSE file type of a host `st_mode`; `None` for a type FUSE cannot express.
pub(crate) fn file_type(mode: u32) -> Option<FileType> {
    match mode & libc::S_IFMT {
        libc::S_IFREG => Some(FileType::RegularFile),
        libc::S_IFDIR => Some(FileType::Directory),
        libc::S_IFLNK => Some(FileType::Symlink),
        libc::S_IFIFO => Some(FileType::NamedPipe),
        libc::S_IFSOCK => Some(FileType::Socket),
        libc::S_IFCHR => Some(FileType::CharDevice),
        libc::S_IFBLK => Some(FileType::BlockDevice),
        _ => None,
    }
}

/// The FUSE file type of a directory entry's `d_type`.
pub(crate) fn dirent_type(kind: rustix::fs::FileType) -> FileType {
    use rustix::fs::FileType as Host;
    match kind {
        Host::Directory => FileType::Directory,
        Host::Symlink => FileType::Symlink,
        Host::Fifo => FileType::NamedPipe,
        Host::Socket => FileType::Socket,
        Host::CharacterDevice => FileType::CharDevice,
        Host::BlockDevice => FileType::BlockDevice,
        // Regular files, and `DT_UNKNOWN` (the kernel looks the entry up anyway).
        _ => FileType::RegularFile,
    }
}

fn system_time(secs: i64, nsecs: i64) -> SystemTime {
    let nanos = u32::try_from(nsecs.clamp(0, 999_999_999)).unwrap_or(0);
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nanos.into())
    }
}

/// The FUSE attributes of a host `stat`, reported as node `ino`. Owner and group are the
/// host's real ones.
pub(crate) fn file_attr(ino: u64, st: &Stat) -> FileAttr {
    let mode = st.st_mode;
    FileAttr {
        ino: INodeNo(ino),
        size: u64::try_from(st.st_size).unwrap_or(0),
        blocks: u64::try_from(st.st_blocks).unwrap_or(0),
        atime: system_time(st.st_atime, st.st_atime_nsec as i64),
        mtime: system_time(st.st_mtime, st.st_mtime_nsec as i64),
        ctime: system_time(st.st_ctime, st.st_ctime_nsec as i64),
        crtime: UNIX_EPOCH,
        kind: file_type(mode).unwrap_or(FileType::RegularFile),
        perm: (mode & 0o7777) as u16,
        nlink: u32::try_from(st.st_nlink).unwrap_or(u32::MAX),
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: u32::try_from(st.st_blksize).unwrap_or(4096),
        flags: 0,
    }
}

/// A FUSE `setattr` time as a `utimensat` timestamp (`UTIME_OMIT` when not set).
pub(crate) fn timespec(time: Option<TimeOrNow>) -> Timespec {
    match time {
        None => Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timespec {
                tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: d.subsec_nanos().into(),
            },
            Err(before) => {
                let d = before.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                if d.subsec_nanos() == 0 {
                    Timespec {
                        tv_sec: -secs,
                        tv_nsec: 0,
                    }
                } else {
                    Timespec {
                        tv_sec: -secs - 1,
                        tv_nsec: (1_000_000_000 - d.subsec_nanos()).into(),
                    }
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let ts = timespec(Some(TimeOrNow::SpecificTime(t)));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (1_700_000_000, 5));
        assert_eq!(system_time(ts.tv_sec, ts.tv_nsec), t);
        let before = UNIX_EPOCH - Duration::new(1, 250);
        let ts = timespec(Some(TimeOrNow::SpecificTime(before)));
        assert_eq!(system_time(ts.tv_sec, ts.tv_nsec), before);
        assert_eq!(timespec(None).tv_nsec, UTIME_OMIT);
    }

    #[test]
    fn types_follow_the_mode() {
        assert_eq!(file_type(libc::S_IFDIR | 0o755), Some(FileType::Directory));
        assert_eq!(file_type(libc::S_IFLNK | 0o777), Some(FileType::Symlink));
        assert_eq!(file_type(0), None);
    }
}
