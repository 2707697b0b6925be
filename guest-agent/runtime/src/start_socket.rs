//! The start socket: `<state_root>/<id>/start.sock`, a listening
//! `SOCK_SEQPACKET` socket a created container's init waits on until
//! `start` (possibly from another process) connects.
//!
//! A Unix socket path is limited to 107 bytes, which a state root of ~32
//! characters plus a 64-character id already exceeds. So both `bind` and
//! `connect` go through `/proc/self/fd/<dirfd>/start.sock`, with `dirfd` an
//! `O_PATH` descriptor of the state directory: always short, and the socket
//! file still lands in the state directory.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use nix::sys::stat::Mode;

use crate::state::START_SOCKET;
use crate::sync::SyncSocket;

/// A short address for `<dir>/start.sock`, valid while `dir_fd` is open.
fn short_addr(dir_fd: &OwnedFd) -> nix::Result<UnixAddr> {
    UnixAddr::new(format!("/proc/self/fd/{}/{START_SOCKET}", dir_fd.as_raw_fd()).as_str())
}

fn open_dir(dir: &Path) -> nix::Result<OwnedFd> {
    let fd = open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: open returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn seqpacket() -> nix::Result<OwnedFd> {
    socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
}

/// Binds and listens on `<dir>/start.sock` (in the parent, before fork).
pub(crate) fn listen(dir: &Path) -> nix::Result<OwnedFd> {
    let dir_fd = open_dir(dir)?;
    let fd = seqpacket()?;
    socket::bind(fd.as_raw_fd(), &short_addr(&dir_fd)?)?;
    socket::listen(
        &fd,
        socket::Backlog::new(1).unwrap_or(socket::Backlog::MAXCONN),
    )?;
    Ok(fd)
}

/// Accepts the `start` connection (in the child).
pub(crate) fn accept(listener: RawFd) -> nix::Result<SyncSocket> {
    loop {
        match socket::accept4(listener, SockFlag::SOCK_CLOEXEC) {
            // SAFETY: accept4 returned a new fd that nothing else owns.
            Ok(fd) => return Ok(SyncSocket::from_fd(unsafe { OwnedFd::from_raw_fd(fd) })),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Connects to the start socket in the state directory `dir`.
pub(crate) fn connect(dir: &Path) -> nix::Result<SyncSocket> {
    let dir_fd = open_dir(dir)?;
    let fd = seqpacket()?;
    socket::connect(fd.as_raw_fd(), &short_addr(&dir_fd)?)?;
    Ok(SyncSocket::from_fd(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn works_in_a_directory_with_a_very_long_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d".repeat(120)).join("e".repeat(64));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(dir.join(START_SOCKET).as_os_str().len() > 108);
        let listener = listen(&dir).unwrap();
        assert!(dir.join(START_SOCKET).exists());
        let client = connect(&dir).unwrap();
        let server = accept(listener.as_raw_fd()).unwrap();
        server.send_go().unwrap();
        assert!(matches!(client.recv().unwrap(), crate::sync::Message::Go));
    }
}
