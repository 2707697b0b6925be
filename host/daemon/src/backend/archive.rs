//! Backend-neutral types of the container-filesystem operations: `docker cp` (a path's
//! stat, a tar of it, a tar extracted into the container), `docker export` and
//! `docker diff`.

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

/// A stream of bytes (a tar archive) going to or coming from a backend.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

pub use vmrun_containerfs::{ExtractOptions, PathStat};

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
