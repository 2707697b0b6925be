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
//!   rename (descendants too), unlink and FORGET; ids are never reused.
//! - Extended attributes are not served (`ENODATA`/`ENOTSUP`); `max_write` is 128 KiB.

mod attr;
mod filesystem;
mod inodes;
mod ops_entries;
mod ops_io;
mod resolve;
mod share;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use fuser::{Config, Session, SessionACL};

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
/// Returns `Ok` when the channel ends: `/dev/fuse` unmounted (`ENODEV`), FUSE `DESTROY`, or
/// the peer of a socket channel closed it.
pub fn serve(channel: OwnedFd, options: ShareOptions) -> Result<(), ShareError> {
    let share = ShareFs::new(&options)?;
    // A second fd of the channel, to tell "the peer hung up" from a real error afterwards.
    let probe = channel.try_clone().map_err(ShareError::Handshake)?;
    let mut config = Config::default();
    config.acl = SessionACL::All;
    config.n_threads = Some(WORKER_THREADS);
    let session =
        Session::from_fd(share, channel, SessionACL::All, config).map_err(ShareError::Handshake)?;
    match session.run() {
        Ok(()) => Ok(()),
        Err(_) if peer_closed(&probe) => Ok(()),
        Err(e) => Err(ShareError::Session(e)),
    }
}

/// Whether `channel` is a socket whose peer has closed it (a `recv` would read end of file).
fn peer_closed(channel: &OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: `channel` is an open fd for the duration of the call, and `byte` is a valid,
    // writable buffer of the length passed; MSG_PEEK leaves any pending message in place.
    let n = unsafe {
        libc::recv(
            channel.as_raw_fd(),
            byte.as_mut_ptr().cast(),
            byte.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 0
}
