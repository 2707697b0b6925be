//! The channel between the caller and the container's child process.
//!
//! A `SOCK_SEQPACKET` socket pair (both ends `CLOEXEC`): every message is one
//! record, and the child's end closes by itself when `execve` succeeds, so
//! "end of file" means "exec done". The start socket (a listening Unix socket
//! in the state directory, accepted by the waiting child) speaks the same
//! records, which lets `start` run from another process than `create`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};

use crate::error::ChildError;

const TAG_READY: u8 = b'R';
const TAG_GO: u8 = b'G';
const TAG_ERROR: u8 = b'E';

/// One received record.
#[derive(Debug)]
pub(crate) enum Message {
    /// The child finished setting up and waits for `start`.
    Ready,
    /// The parent finished its part (cgroups); the child may go on.
    Go,
    /// The child failed.
    Error(ChildError),
    /// The other end was closed (for the child's end: exec succeeded or it died).
    Eof,
}

/// One end of a sync channel.
#[derive(Debug)]
pub(crate) struct SyncSocket(OwnedFd);

impl SyncSocket {
    /// A connected pair: (parent's end, child's end).
    pub(crate) fn pair() -> nix::Result<(SyncSocket, SyncSocket)> {
        let (a, b) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((SyncSocket(a), SyncSocket(b)))
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    fn send(&self, bytes: &[u8]) -> nix::Result<()> {
        loop {
            // SAFETY: `bytes` is a valid buffer of `bytes.len()` bytes; the fd is owned by self.
            let n = unsafe {
                libc::send(
                    self.raw(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            match Errno::result(n) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn send_ready(&self) -> nix::Result<()> {
        self.send(&[TAG_READY])
    }

    pub(crate) fn send_go(&self) -> nix::Result<()> {
        self.send(&[TAG_GO])
    }

    /// Sends an error record; best effort (the peer may be gone).
    pub(crate) fn send_error(&self, error: &ChildError) {
        let mut record = vec![TAG_ERROR];
        if serde_json::to_writer(&mut record, error).is_ok() {
            let _ = self.send(&record);
        }
    }

    /// Receives one record, blocking.
    pub(crate) fn recv(&self) -> nix::Result<Message> {
        let mut buf = [0u8; 8192];
        let n = loop {
            // SAFETY: `buf` is a writable buffer of `buf.len()` bytes; the fd is owned by self.
            let n = unsafe { libc::recv(self.raw(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            match Errno::result(n) {
                Ok(n) => break n as usize,
                Err(Errno::EINTR) => continue,
                // The peer died with data unread: treat as closed.
                Err(Errno::ECONNRESET) => break 0,
                Err(e) => return Err(e),
            }
        };
        Ok(match buf[..n] {
            [] => Message::Eof,
            [TAG_READY] => Message::Ready,
            [TAG_GO] => Message::Go,
            [TAG_ERROR, ..] => Message::Error(
                serde_json::from_slice(&buf[1..n])
                    .unwrap_or_else(|_| ChildError::Setup("malformed error from child".into())),
            ),
            _ => Message::Error(ChildError::Setup("unexpected message from child".into())),
        })
    }
}

/// The listening socket a created container waits on until `start`.
pub(crate) fn listen_start_socket(path: &Path) -> nix::Result<OwnedFd> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    socket::bind(fd.as_raw_fd(), &addr)?;
    socket::listen(
        &fd,
        socket::Backlog::new(1).unwrap_or(socket::Backlog::MAXCONN),
    )?;
    Ok(fd)
}

/// Accepts the `start` connection (in the child).
pub(crate) fn accept_start(listener: RawFd) -> nix::Result<SyncSocket> {
    loop {
        match socket::accept4(listener, SockFlag::SOCK_CLOEXEC) {
            // SAFETY: accept4 returned a new fd that nothing else owns.
            Ok(fd) => return Ok(SyncSocket(unsafe { OwnedFd::from_raw_fd(fd) })),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Connects to a waiting container's start socket.
pub(crate) fn connect_start(path: &Path) -> nix::Result<SyncSocket> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    socket::connect(fd.as_raw_fd(), &addr)?;
    Ok(SyncSocket(fd))
}
