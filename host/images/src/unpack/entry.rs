//! Writing one tar entry beneath the layer root.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};
use tar::EntryType;

use super::beneath::{file_type_at, remove_at, Beneath};
use super::{clean_components, UnpackError};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";
const COPY_BUFFER: usize = 128 * 1024;

/// Metadata of an entry, from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Writes entries beneath `root`, remembering directory mtimes to set at the end.
pub(super) struct EntryWriter<'a> {
    root: &'a Beneath,
    as_root: bool,
    dir_times: Vec<(Vec<Vec<u8>>, Timespec)>,
    buffer: Vec<u8>,
}

impl<'a> EntryWriter<'a> {
    pub(super) fn new(root: &'a Beneath, as_root: bool) -> Self {
        EntryWriter {
            root,
            as_root,
            dir_times: Vec::new(),
            buffer: vec![0; COPY_BUFFER],
        }
    }

    /// Writes one entry; returns the bytes of regular-file content written.
    pub(super) fn write<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<u64, UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            return Ok(0);
        }
        let components = clean_components(&raw).map_err(|reason| unsafe_entry(&name, reason))?;
        let meta = read_meta(entry).map_err(UnpackError::Read)?;
        let Some((base, parents)) = components.split_last() else {
            return self.write_root(&name, kind, &meta);
        };
        let io_err = |source: io::Error| UnpackError::Io {
            entry: name.clone(),
            source,
        };
        if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) {
            let parent = self.open_parent(&name, parents, true)?;
            return self
                .write_whiteout(&name, &parent, base, target)
                .map(|()| 0);
        }
        let parent = self.open_parent(&name, parents, true)?;
        let base_os = OsStr::from_bytes(base);
        match kind {
            EntryType::Directory => {
                match file_type_at(&parent, base_os).map_err(io_err)? {
                    Some(FileType::Directory) => {}
                    existing => {
                        if existing.is_some() {
                            remove_at(&parent, base_os).map_err(io_err)?;
                        }
                        rfs::mkdirat(&parent, base_os, Mode::from_raw_mode(0o700))
                            .map_err(|e| io_err(e.into()))?;
                    }
                }
                let dir = rfs::openat(
                    &parent,
                    base_os,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_err(e.into()))?;
                self.apply_meta_fd(&dir, &meta, false).map_err(io_err)?;
                self.dir_times
                    .push((components.iter().map(|c| c.to_vec()).collect(), meta.mtime));
                Ok(0)
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove_at(&parent, base_os).map_err(io_err)?;
                let fd = rfs::openat(
                    &parent,
                    base_os,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io_err(e.into()))?;
                let mut file = File::from(fd);
                let written = self.copy_data(entry, &mut file, &name)?;
                self.apply_meta_fd(&file, &meta, true).map_err(io_err)?;
                Ok(written)
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(&name, "symlink without a target".to_owned()))?
                    .into_owned();
                remove_at(&parent, base_os).map_err(io_err)?;
                rfs::symlinkat(OsStr::from_bytes(&target), &parent, base_os)
                    .map_err(|e| io_err(e.into()))?;
                self.apply_meta_at(&parent, base_os, &meta, false)
                    .map_err(io_err)?;
                Ok(0)
            }
            EntryType::Link => {
                self.write_hard_link(entry, &name, &parent, &components)?;
                Ok(0)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if file_type != FileType::Fifo && !self.as_root {
                    tracing::warn!(entry = %name, "skipping device node: not running as root");
                    return Ok(0);
                }
                let (major, minor) = if file_type == FileType::Fifo {
                    (0, 0)
                } else {
                    let header = entry.header();
                    (
                        header
                            .device_major()
                            .map_err(UnpackError::Read)?
                            .unwrap_or(0),
                        header
                            .device_minor()
                            .map_err(UnpackError::Read)?
                            .unwrap_or(0),
                    )
                };
                remove_at(&parent, base_os).map_err(io_err)?;
                rfs::mknodat(
                    &parent,
                    base_os,
                    file_type,
                    Mode::from_raw_mode(0o600),
                    rfs::makedev(major, minor),
                )
                .map_err(|e| io_err(e.into()))?;
                self.apply_meta_at(&parent, base_os, &meta, true)
                    .map_err(io_err)?;
                Ok(0)
            }
            other => Err(UnpackError::Unsupported {
                entry: name,
                kind: char::from(other.as_byte()),
            }),
        }
    }

    /// Sets the mtimes of directories, now that nothing more is written into them.
    pub(super) fn finish(self) -> Result<(), UnpackError> {
        for (components, mtime) in self.dir_times.iter().rev() {
            let slices: Vec<&[u8]> = components.iter().map(Vec::as_slice).collect();
            let dir = match self.root.open_dir(&slices) {
                Ok(dir) => dir,
                // Replaced by a later entry: nothing to do.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(
                            libc_errno::ENOENT
                                | libc_errno::ENOTDIR
                                | libc_errno::ELOOP
                                | libc_errno::EXDEV
                        )
                    ) =>
                {
                    continue
                }
                Err(source) => {
                    return Err(UnpackError::Io {
                        entry: String::from_utf8_lossy(&components.join(&b'/')).into_owned(),
                        source,
                    })
                }
            };
            rfs::futimens(&dir, &times(*mtime)).map_err(|e| UnpackError::Io {
                entry: String::from_utf8_lossy(&components.join(&b'/')).into_owned(),
                source: e.into(),
            })?;
        }
        Ok(())
    }

    fn write_root(&mut self, name: &str, kind: EntryType, meta: &Meta) -> Result<u64, UnpackError> {
        if kind != EntryType::Directory {
            return Err(unsafe_entry(
                name,
                "a non-directory entry for the layer root".to_owned(),
            ));
        }
        let io_err = |source: io::Error| UnpackError::Io {
            entry: name.to_owned(),
            source,
        };
        let root = self.root.root_dir().map_err(io_err)?;
        self.apply_meta_fd(&root, meta, false).map_err(io_err)?;
        self.dir_times.push((Vec::new(), meta.mtime));
        Ok(0)
    }

    fn write_whiteout(
        &mut self,
        name: &str,
        parent: &OwnedFd,
        base: &[u8],
        target: &[u8],
    ) -> Result<(), UnpackError> {
        let io_err = |source: io::Error| UnpackError::Io {
            entry: name.to_owned(),
            source,
        };
        if base == OPAQUE_WHITEOUT {
            return rfs::fsetxattr(parent, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|e| io_err(e.into()));
        }
        if target.starts_with(WHITEOUT_PREFIX) {
            // Other `.wh..wh.*` names are aufs metadata with no overlayfs meaning.
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(unsafe_entry(
                name,
                "whiteout with an invalid name".to_owned(),
            ));
        }
        let target = OsStr::from_bytes(target);
        remove_at(parent, target).map_err(io_err)?;
        rfs::mknodat(
            parent,
            target,
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .map_err(|e| io_err(e.into()))
    }

    fn write_hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<R>,
        name: &str,
        parent: &OwnedFd,
        components: &[&[u8]],
    ) -> Result<(), UnpackError> {
        let io_err = |source: io::Error| UnpackError::Io {
            entry: name.to_owned(),
            source,
        };
        let target_raw = entry
            .link_name_bytes()
            .ok_or_else(|| unsafe_entry(name, "hard link without a target".to_owned()))?
            .into_owned();
        let target = clean_components(&target_raw).map_err(|reason| {
            unsafe_entry(
                name,
                format!(
                    "hard link target {:?}: {reason}",
                    String::from_utf8_lossy(&target_raw)
                ),
            )
        })?;
        let Some((target_base, target_parents)) = target.split_last() else {
            return Err(unsafe_entry(name, "hard link to the layer root".to_owned()));
        };
        if target.as_slice() == components {
            return Ok(());
        }
        let target_parent = self.open_parent(name, target_parents, false)?;
        let target_base = OsStr::from_bytes(target_base);
        match file_type_at(&target_parent, target_base).map_err(io_err)? {
            None => {
                return Err(unsafe_entry(
                    name,
                    format!(
                        "hard link target {:?} does not exist in this layer",
                        String::from_utf8_lossy(&target_raw)
                    ),
                ))
            }
            Some(FileType::Directory) => {
                return Err(unsafe_entry(name, "hard link to a directory".to_owned()))
            }
            Some(_) => {}
        }
        let Some(base) = components.last() else {
            return Err(unsafe_entry(name, "hard link at the layer root".to_owned()));
        };
        let base = OsStr::from_bytes(base);
        remove_at(parent, base).map_err(io_err)?;
        rfs::linkat(&target_parent, target_base, parent, base, AtFlags::empty())
            .map_err(|e| io_err(e.into()))
    }

    fn open_parent(
        &self,
        name: &str,
        parents: &[&[u8]],
        create: bool,
    ) -> Result<OwnedFd, UnpackError> {
        let opened = if create {
            self.root.open_dir_creating(parents)
        } else {
            self.root.open_dir(parents)
        };
        opened.map_err(|source| match source.raw_os_error() {
            Some(libc_errno::EXDEV) => unsafe_entry(
                name,
                "its parent path leads outside the layer directory through a symlink".to_owned(),
            ),
            Some(libc_errno::ELOOP) => unsafe_entry(
                name,
                "its parent path goes through a symlink that cannot be followed safely".to_owned(),
            ),
            Some(libc_errno::ENOTDIR) => unsafe_entry(
                name,
                "a component of its parent path is not a directory".to_owned(),
            ),
            _ => UnpackError::Io {
                entry: name.to_owned(),
                source,
            },
        })
    }

    fn copy_data<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        file: &mut File,
        name: &str,
    ) -> Result<u64, UnpackError> {
        let mut total = 0u64;
        loop {
            let n = match entry.read(&mut self.buffer) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(UnpackError::Read(e)),
            };
            file.write_all(&self.buffer[..n])
                .map_err(|source| UnpackError::Io {
                    entry: name.to_owned(),
                    source,
                })?;
            total += n as u64;
        }
    }

    /// Ownership (as root), mode, xattrs and (for non-directories) times, on an open descriptor.
    fn apply_meta_fd(&self, fd: impl AsFd, meta: &Meta, set_times: bool) -> io::Result<()> {
        let fd = fd.as_fd();
        if self.as_root {
            rfs::fchown(
                fd,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )?;
        }
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode))?;
        for (key, value) in &meta.xattrs {
            match rfs::fsetxattr(fd, key.as_str(), value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(e @ (Errno::OPNOTSUPP | Errno::PERM)) => {
                    tracing::warn!(xattr = %key, error = %e, "cannot set xattr; skipped");
                }
                Err(e) => return Err(e.into()),
            }
        }
        if set_times {
            rfs::futimens(fd, &times(meta.mtime))?;
        }
        Ok(())
    }

    /// Ownership, mode (not for symlinks) and times on a name that must not be followed.
    fn apply_meta_at(
        &self,
        parent: &OwnedFd,
        base: &OsStr,
        meta: &Meta,
        set_mode: bool,
    ) -> io::Result<()> {
        if self.as_root {
            rfs::chownat(
                parent,
                base,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        if set_mode {
            // Only called for names just created as device nodes or FIFOs, never symlinks.
            rfs::chmodat(
                parent,
                base,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )?;
        }
        rfs::utimensat(parent, base, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }
}

/// Errno values this module tells apart, as `raw_os_error` reports them.
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const EXDEV: i32 = 18;
    pub const ENOTDIR: i32 = 20;
    pub const ELOOP: i32 = 40;
}

fn unsafe_entry(name: &str, reason: String) -> UnpackError {
    UnpackError::UnsafeEntry {
        entry: name.to_owned(),
        reason,
    }
}

fn times(mtime: Timespec) -> Timestamps {
    Timestamps {
        last_access: mtime,
        last_modification: mtime,
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<R>) -> io::Result<Meta> {
    let header = entry.header();
    let mut uid = header.uid()?;
    let mut gid = header.gid()?;
    let mode = header.mode()? & 0o7777;
    let mut mtime = Timespec {
        tv_sec: i64::try_from(header.mtime()?).unwrap_or(0),
        tv_nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Some(extensions) = entry.pax_extensions()? {
        for extension in extensions {
            let extension = extension?;
            let Ok(key) = extension.key() else { continue };
            let value = extension.value_bytes();
            match key {
                "uid" => uid = parse_pax_number(value)?,
                "gid" => gid = parse_pax_number(value)?,
                "mtime" => mtime = parse_pax_time(value).unwrap_or(mtime),
                _ => {
                    if let Some(xattr) = key.strip_prefix(PAX_XATTR_PREFIX) {
                        xattrs.push((xattr.to_owned(), value.to_vec()));
                    }
                }
            }
        }
    }
    let id = |v: u64, what: &str| {
        u32::try_from(v)
            .ok()
            .filter(|&v| v != u32::MAX)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("invalid {what} {v}"))
            })
    };
    Ok(Meta {
        mode,
        uid: id(uid, "uid")?,
        gid: id(gid, "gid")?,
        mtime,
        xattrs,
    })
}

fn parse_pax_number(value: &[u8]) -> io::Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "invalid PAX number"))
}

fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(Timespec { tv_sec, tv_nsec })
}
