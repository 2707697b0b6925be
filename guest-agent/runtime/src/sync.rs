//! The channel between the caller and the container's child process.
//!
//! A `SOCK_SEQPACKET` socket pair (both ends `CLOEXEC`): every message is one
//! record, and the child's end closes by itself when `execve` succeeds, so
//! "end of file" means "exec done". The start socket (a listening Unix socket
//! in the state directory, accepted by the waiting child) speaks the same
//! records, which lets `start` run from another process than `create`
//! (see [`crate::start_socket`]).
//!
//! With a terminal, the child sends the pty master it opened inside the
//! container as a `Console` record carrying the fd (`SCM_RIGHTS`).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

use crate::error::ChildError;

const TAG_READY: u8 = b'R';
const TAG_GO: u8 = b'G';
const TAG_ERROR: u8 = b'E';
const TAG_CONSOLE: u8 = b'C';

/// One received record.
#[derive(Debug)]
pub(crate) enum Message {
    /// The child finished setting up and waits for `start`.
    Ready,
    /// The parent finished its part (cgroups); the child may go on.
    Go,
    /// The child failed.
    Error(ChildError),
    /// The pty master of the container's terminal.
    Console(OwnedFd),
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

    /// Wraps a connected `SOCK_SEQPACKET` socket.
    pub(crate) fn from_fd(fd: OwnedFd) -> SyncSocket {
        SyncSocket(fd)
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

    /// Sends the terminal's master (child side).
    pub(crate) fn send_console(&self, master: RawFd) -> nix::Result<()> {
        let fds = [master];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [IoSlice::new(&[TAG_CONSOLE])];
        loop {
            match socket::sendmsg::<()>(self.raw(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends an error record; best effort (the peer may be gone).
    pub(crate) fn send_error(&self, error: &ChildError) {
        let mut record = vec![TAG_ERROR];
        if serde_json::to_writer(&mut record, error).is_ok() {
            let _ = self.send(&record);
        }
    }

    /// Receives one record, blocking. Fds passed along are received `CLOEXEC`.
    pub(crate) fn recv(&self) -> nix::Result<Message> {
        let mut buf = [0u8; 8192];
        let mut cmsg_buf = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match socket::recvmsg::<()>(
                self.raw(),
                &mut iov,
                Some(&mut cmsg_buf),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    for cmsg in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = cmsg {
                            for raw in fds {
                                // SAFETY: the kernel just installed this fd for us; nothing else owns it.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                // Keep the first, close any extra.
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
                Err(Errno::EINTR) => continue,
                // The peer died with data unread: treat as closed.
                Err(Errno::ECONNRESET) => break (0, None),
                Err(e) => return Err(e),
            }
        };
        Ok(match (&buf[..n], fd) {
            ([], _) => Message::Eof,
            ([TAG_CONSOLE], Some(fd)) => Message::Console(fd),
            ([TAG_READY], _) => Message::Ready,
            ([TAG_GO], _) => Message::Go,
            ([TAG_ERROR, ..], _) => Message::Error(
                serde_json::from_slice(&buf[1..n])
                    .unwrap_or_else(|_| ChildError::Setup("malformed error from child".into())),
            ),
            _ => Message::Error(ChildError::Setup("unexpected message from child".into())),
        })
    }
}
