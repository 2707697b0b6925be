//! Backend-neutral types of the container-filesystem operations: `docker cp` (a path's
//! stat, a tar of it, a tar extracted into the container), `docker export` and
//! `docker diff`.

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

/// A stream of bytes (a tar archive) going to or coming from a backend.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Docker's `ContainerPathStat`: the `X-Docker-Container-Path-Stat` header.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Refuse to replace a directory by a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Own the files by the container's user instead of the archive's owners.
    pub copy_uid_gid: bool,
}

/// What happened to a path in a container's writable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Changed (docker's kind 0, `C`).
    Modified = 0,
    /// Added (kind 1, `A`).
    Added = 1,
    /// Deleted (kind 2, `D`).
    Deleted = 2,
}

/// One entry of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute path in the container.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}
