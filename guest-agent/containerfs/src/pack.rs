//! Tar archives of a container's files, read through descriptors inside its root
//! ([`crate::inroot`]): `docker cp` out of a container and `docker export`.
//!
//! Directories are walked with `openat(O_NOFOLLOW)` on their descriptors, entries in
//! byte order of their names; symlinks are archived as links, never followed; hard
//! links to a file already archived become link entries, as dockerd's archives have
//! them. [`ChannelWriter`] turns the blocking writer into the chunks of a response.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};

/// Writes tar entries for files found through descriptors.
pub struct Packer<W: Write> {
    builder: tar::Builder<W>,
    links: HashMap<(u64, u64), Vec<u8>>,
    names: Names,
    /// Skip the contents of directories on another device than this one (mount points).
    one_device: Option<u64>,
}

impl<W: Write> Packer<W> {
    /// A packer writing to `out`, naming owners by `names`; with `one_device`, directories of other file systems
    /// are archived empty.
    pub fn new(out: W, names: Names, one_device: Option<u64>) -> Self {
        Packer {
            builder: tar::Builder::new(out),
            links: HashMap::new(),
            names,
            one_device,
        }
    }

    /// Archives entry `base` of directory `parent` as `name`, a directory with its tree.
    pub fn add(&mut self, parent: &OwnedFd, base: &[u8], name: &[u8]) -> io::Result<()> {
        let st = rfs::statat(parent, OsStr::from_bytes(base), AtFlags::SYMLINK_NOFOLLOW)?;
        self.entry(parent, base, name, &st)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let dir = open_child_dir(parent, base)?;
            self.tree(&dir, name)?;
        }
        Ok(())
    }

    /// Archives what directory `dir` holds, each entry named `prefix/<name>` (just
    /// `<name>` with an empty prefix).
    pub fn tree(&mut self, dir: &OwnedFd, prefix: &[u8]) -> io::Result<()> {
        if let Some(dev) = self.one_device {
            if rfs::fstat(dir)?.st_dev != dev {
                return Ok(());
            }
        }
        let mut names: Vec<Vec<u8>> = Vec::new();
        let listing = rfs::Dir::read_from(dir)?;
        for entry in listing {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        names.sort();
        for child in names {
            let mut full = prefix.to_vec();
            if !full.is_empty() && !full.ends_with(b"/") {
                full.push(b'/');
            }
            full.extend_from_slice(&child);
            let st = match rfs::statat(dir, OsStr::from_bytes(&child), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT) => continue, // removed while we walk
                Err(e) => return Err(e.into()),
            };
            self.entry(dir, &child, &full, &st)?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let sub = open_child_dir(dir, &child)?;
                self.tree(&sub, &full)?;
            }
        }
        Ok(())
    }

    /// Ends the archive.
    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }

    fn entry(&mut self, parent: &OwnedFd, base: &[u8], name: &[u8], st: &Stat) -> io::Result<()> {
        let kind = FileType::from_raw_mode(st.st_mode);
        let mut header = tar::Header::new_gnu();
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(u64::from(st.st_uid));
        header.set_gid(u64::from(st.st_gid));
        header.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        header.set_size(0);
        if let Some(user) = self.names.user(st.st_uid) {
            header.set_username(&user)?;
        }
        if let Some(group) = self.names.group(st.st_gid) {
            header.set_groupname(&group)?;
        }
        let at = OsStr::from_bytes(base);
        if kind != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                header.set_entry_type(tar::EntryType::Link);
                return self.append(&mut header, name, Some(&first), io::empty());
            }
            self.links.insert(key, name.to_vec());
        }
        match kind {
            FileType::Directory => {
                header.set_entry_type(tar::EntryType::Directory);
                let mut dir_name = name.to_vec();
                if !dir_name.ends_with(b"/") {
                    dir_name.push(b'/');
                }
                self.append(&mut header, &dir_name, None, io::empty())
            }
            FileType::RegularFile => {
                let fd = rfs::openat(
                    parent,
                    at,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let file = std::fs::File::from(fd);
                let size = u64::try_from(st.st_size).unwrap_or(0);
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                // A file that shrinks while archived is padded, one that grows is cut:
                // the header's size is what the archive holds.
                let data = Read::take(Read::chain(Read::take(file, size), io::repeat(0)), size);
                self.append(&mut header, name, None, data)
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(parent, at, Vec::new())?;
                header.set_entry_type(tar::EntryType::Symlink);
                self.append(&mut header, name, Some(target.as_bytes()), io::empty())
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                header.set_entry_type(match kind {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                let major = rustix::fs::major(st.st_rdev);
                let minor = rustix::fs::minor(st.st_rdev);
                header.set_device_major(major)?;
                header.set_device_minor(minor)?;
                self.append(&mut header, name, None, io::empty())
            }
            // Sockets are not archived (as in dockerd's archives).
            _ => Ok(()),
        }
    }

    /// Appends an entry named `name` exactly as given (`./x` stays `./x`); names and
    /// link targets too long for the header go through the tar crate's GNU extensions.
    fn append(
        &mut self,
        header: &mut tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: impl Read,
    ) -> io::Result<()> {
        const FIELD: usize = 100;
        if name.len() <= FIELD && link.is_none_or(|l| l.len() <= FIELD) {
            if let Some(gnu) = header.as_gnu_mut() {
                gnu.name = [0; FIELD];
                gnu.name[..name.len()].copy_from_slice(name);
            }
            if let Some(l) = link {
                header.set_link_name_literal(l)?;
            }
            header.set_cksum();
            return self.builder.append(header, data);
        }
        let path = OsStr::from_bytes(name);
        match link {
            Some(l) => self.builder.append_link(header, path, OsStr::from_bytes(l)),
            None => self.builder.append_data(header, path, data),
        }
    }
}

/// User and group names by id, from the container's own `/etc/passwd` and `/etc/group`
/// (dockerd 20.10 archives inside the container's root, so it looks them up there).
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    /// The names in `passwd` and `group` (file contents); the first entry of an id wins.
    pub fn new(passwd: &str, group: &str) -> Self {
        let mut names = Names::default();
        for u in vmrun_runtime::user::parse_passwd(passwd) {
            names.users.entry(u.uid).or_insert(u.name);
        }
        for g in vmrun_runtime::user::parse_group(group) {
            names.groups.entry(g.gid).or_insert(g.name);
        }
        names
    }

    fn user(&self, uid: u32) -> Option<String> {
        self.users.get(&uid).cloned()
    }

    fn group(&self, gid: u32) -> Option<String> {
        self.groups.get(&gid).cloned()
    }
}

/// Opens directory `name` of `parent` without following a symlink.
pub fn open_child_dir(parent: &OwnedFd, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        parent,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}
