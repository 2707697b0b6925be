//! The host side of `-v /host/dir:/ctr/dir[:ro]` for containers in VMs. The guest agent
//! mounts a FUSE file system in the guest and relays the raw FUSE kernel messages over vsock;
//! the daemon turns them into a channel with one message per `recv` and hands it to
//! [`serve`], which answers them as a passthrough file system of one host directory (with
//! the `fuser` crate; nothing is mounted on the host).
//!
//! - **Confinement**: every path is resolved beneath an fd of the share's root with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, and final
//!   components are handled with `*at` calls that do not follow them. A symlink in the share
//!   is only ever returned as a symlink (the guest kernel resolves it, inside the container);
//!   `..`, a symlinked directory, or a directory swapped for a symlink by the host between
//!   two calls never leads out. Names containing `/`, and `.`/`..`, are refused.
//! - **Ownership**: what the container creates (files, directories, FIFOs, symlinks) is
//!   given on the host to the owner (uid/gid) of the share's root, whatever the guest
//!   process's uid; attributes report the host's real owner. `chown` from the guest is
//!   accepted as a no-op. Set-user-ID and set-group-ID bits are never set on host files
//!   (directories keep set-group-ID), and device nodes cannot be created (`EPERM`).
//! - **`:ro`**: every modifying operation, and opening for writing, answers `EROFS`.
//! - **Coherence**: entry and attribute TTLs are 0, so every stat and path walk in the guest
//!   asks the host. Files are opened without `FOPEN_DIRECT_IO` and without
//!   `FOPEN_KEEP_CACHE`: the guest's page cache is dropped at every open and, with
//!   `FUSE_AUTO_INVAL_DATA`, whenever the host's size or mtime changed; writes are
//!   write-through. (Not direct I/O, so that shared `mmap` works in the guest.)
//! - **Inodes** are the server's own table of relative paths (root = 1), kept right across
//!   rename (descendants too), unlink and FORGET; ids are never reused. Two hard links of one
//!   host file are two nodes (same data, `nlink` 2). An unlinked file that is still open
//!   keeps answering through its open handle.
//! - **Hostile guests**: the guest is not trusted. Messages pass a guard before `fuser`
//!   parses them (whole headers, sizes that match, times in range; operations the share
//!   does not serve answered `ENOSYS`), read sizes and directory pages are capped at
//!   128 KiB, and no guest input makes `serve` panic (a fuzz test sends it random requests).
//! - Extended attributes are not served (`ENODATA`/`ENOTSUP`); `max_write` is 128 KiB, and
//!   so is `max_readahead`, so no reply is larger than 128 KiB plus its header.

mod attr;
mod filesystem;
mod inodes;
mod message_guard;
mod ops_entries;
mod ops_io;
mod resolve;
mod share;

#[cfg(test)]
mod confinement_tests;

use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use fuser::{Config, Session, SessionACL};

use crate::message_guard::MessageGuard;
use crate::share::ShareFs;

/// How many threads answer requests of one share (a slow host call does not stall others).
const WORKER_THREADS: usize = 4;

/// What one share serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareOptions {
    /// The shared host directory (must exist and be a directory).
    pub root: PathBuf,
    /// `:ro`: every change is refused with EROFS on the host side, whatever the guest mounted.
    pub read_only: bool,
}

/// Why serving a share failed.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The share's root cannot be opened.
    #[error("file share root {path}: {source}")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The share's root is not a directory.
    #[error("file share root {0} is not a directory")]
    NotADirectory(PathBuf),
    /// The channel could not be set up (the private pair between it and `fuser`).
    #[error("cannot set up the file share channel: {0}")]
    Channel(#[source] std::io::Error),
    /// The FUSE INIT handshake on the channel failed (or the channel ended before it).
    #[error("FUSE handshake on the file share channel failed: {0}")]
    Handshake(#[source] std::io::Error),
    /// The FUSE session ended with an error.
    #[error("FUSE session of the file share failed: {0}")]
    Session(#[source] std::io::Error),
}

/// Serves `options.root` on `channel` (a FUSE channel: one FUSE kernel message per read/recv,
/// one reply per write) until the channel ends; blocking (the caller runs it on its own thread).
///
/// Returns `Ok` when the channel ends after the handshake: `/dev/fuse` unmounted (`ENODEV`),
/// or the peer of a socket channel closed it or shut it down (`shutdown(SHUT_RDWR)` on the
/// daemon's end is how to stop serving early). Malformed messages from the guest are
/// answered `EIO` and dropped (see `message_guard`); nothing a guest sends panics here.
pub fn serve(channel: OwnedFd, options: ShareOptions) -> Result<(), ShareError> {
    let share = ShareFs::new(&options)?;
    let (guard, for_fuser) = MessageGuard::start(channel).map_err(ShareError::Channel)?;
    let outcome = catch_unwind(AssertUnwindSafe(|| run_session(share, for_fuser)));
    guard.stop();
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(ShareError::Session(_))) if guard.channel_ended() => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ShareError::Session(std::io::Error::other(
            "the FUSE session panicked",
        ))),
    }
}

/// The FUSE handshake, then the request loop on `WORKER_THREADS` threads.
fn run_session(share: ShareFs, fd: OwnedFd) -> Result<(), ShareError> {
    let mut config = Config::default();
    config.acl = SessionACL::All;
    config.n_threads = Some(WORKER_THREADS);
    let session =
        Session::from_fd(share, fd, SessionACL::All, config).map_err(ShareError::Handshake)?;
    session.run().map_err(ShareError::Session)
}
