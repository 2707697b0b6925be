//! A container's files as `docker cp` and `docker export` see them, wherever the
//! container runs: paths resolved inside its root by the kernel ([`inroot`]), a path or
//! the whole root written as a tar ([`pack`]), a tar extracted into a directory of it
//! ([`unpack`]), and a new volume filled with the image's content at its mount point
//! ([`fill`]), and a stopped container's volumes and binds mounted over its root
//! ([`binds`]). The daemon uses it for native containers and the guest agent for
//! containers in VMs, so both follow the same rules.

pub mod binds;
pub mod fill;
pub mod inroot;
pub mod pack;
pub mod unpack;

use std::io::{Read, Write};

use rustix::fs::{FileType, OFlags};

pub use inroot::{Located, Root};

/// Docker's `ContainerPathStat`: the `X-Docker-Container-Path-Stat` header.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathStat {
    /// The base name of the path as asked.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Go's `os.FileMode` bits (type bits high, permissions low), as dockerd sends them.
    pub mode: u32,
    /// Modification time, RFC 3339 with nanoseconds.
    pub mtime: String,
    /// Where a symlink leads, resolved inside the container (empty for other files).
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// How `PUT /containers/{id}/archive` extracts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExtractOptions {
    /// Refuse to replace a directory by a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Own the files by the container's user instead of the archive's owners.
    pub copy_uid_gid: bool,
}

/// Why an operation on a container's files failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path (as asked) does not exist in the container.
    #[error("Could not find the file {0}")]
    NotFound(String),
    /// The request or the archive is not acceptable (an entry leaving the destination, a
    /// destination that is not a directory, a read-only volume, an unknown user).
    #[error("{0}")]
    BadRequest(String),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

fn stat_error(path: &str, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => Error::NotFound(path.to_string()),
        _ => Error::Failed(format!("stat {path}: {e}")),
    }
}

/// `docker cp`'s stat of `path` in `root` (symlinks resolved inside it, the last
/// component not followed), and where it is.
pub fn stat(root: &Root, path: &str) -> Result<(Located, PathStat), Error> {
    root.path_stat(path.as_bytes())
        .map_err(|e| stat_error(path, e))
}

/// Writes the tar `docker cp` sends out of a container: `located` (found by [`stat`])
/// named by `stat`'s base name, a directory with its tree; returns the writer, flushed.
pub fn write_archive<W: Write>(
    root: &Root,
    located: &Located,
    stat: &PathStat,
    out: W,
) -> std::io::Result<W> {
    let name = if stat.name == "/" { "." } else { &stat.name };
    let mut packer = pack::Packer::new(out, owner_names(root), None);
    packer.add(&located.parent, &located.base, name.as_bytes())?;
    let mut w = packer.finish()?;
    w.flush()?;
    Ok(w)
}

/// Writes the tar `docker export` sends: every file under `root`, not descending into
/// other file systems (volumes, binds); returns the writer, flushed.
pub fn write_export<W: Write>(root: &Root, out: W) -> std::io::Result<W> {
    let dir = root.open_dir(b"/")?;
    let dev = rustix::fs::fstat(&dir)?.st_dev;
    let mut packer = pack::Packer::new(out, owner_names(root), Some(dev));
    packer.tree(&dir, b"")?;
    let mut w = packer.finish()?;
    w.flush()?;
    Ok(w)
}

/// Extracts the tar read from `input` into directory `path` of `root` (symlinks in the
/// path followed inside the root); with `copy_uid_gid` and a `user` (docker's form,
/// looked up in the container's own `/etc/passwd` and `/etc/group`) the files are his.
pub fn extract_into(
    root: &Root,
    path: &str,
    opts: ExtractOptions,
    user: Option<&str>,
    input: impl Read,
) -> Result<(), Error> {
    let dest = root
        .follow_in_scope(path.as_bytes())
        .map_err(|e| stat_error(path, e))?;
    let dir = root
        .open_at(&dest, OFlags::PATH)
        .map_err(|e| stat_error(path, e))?;
    let st = rustix::fs::fstat(&dir).map_err(|e| stat_error(path, e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(Error::BadRequest(
            "extraction point is not a directory".into(),
        ));
    }
    // As dockerd: a container without a user keeps the archive's owners.
    let user = user.filter(|u| !u.is_empty());
    let owner = match (opts.copy_uid_gid, user) {
        (true, Some(user)) => Some(container_owner(root, user)?),
        _ => None,
    };
    let target = unpack::Target {
        root,
        dest,
        opts,
        owner,
    };
    unpack::extract(&target, input)
}

/// A file of the container as text; empty when it cannot be read.
fn read_text(root: &Root, path: &[u8]) -> String {
    let Ok(fd) = root.open_at(path, OFlags::RDONLY) else {
        return String::new();
    };
    let mut text = String::new();
    let _ = std::fs::File::from(fd).read_to_string(&mut text);
    text
}

/// The container's user and group names.
fn owner_names(root: &Root) -> pack::Names {
    pack::Names::new(
        &read_text(root, b"/etc/passwd"),
        &read_text(root, b"/etc/group"),
    )
}

/// The owner `copyUIDGID` gives files: the container's user, from its `/etc/passwd`
/// and `/etc/group` read inside its root.
fn container_owner(root: &Root, user: &str) -> Result<(u32, u32), Error> {
    let passwd = vmrun_runtime::user::parse_passwd(&read_text(root, b"/etc/passwd"));
    let groups = vmrun_runtime::user::parse_group(&read_text(root, b"/etc/group"));
    let u = vmrun_runtime::user::resolve(&passwd, &groups, user)
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    Ok((u.uid, u.gid))
}
