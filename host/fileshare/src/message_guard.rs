//! The guard between the share's channel and `fuser`. The channel carries what a guest sent,
//! and a guest is not trusted: `fuser` panics on a request whose header claims fewer bytes
//! than a header (it slices `data[40..len]`). So `fuser` reads from a private seqpacket pair
//! instead, and a relay thread passes on only whole, well-formed messages (at least a
//! header, and exactly as long as the header says); anything else is answered `EIO` (when
//! it has a request id to answer) and dropped. Replies go back unchanged.
//!
//! The relay also tells how the channel ended: end of file or `ENODEV` (an unmounted
//! `/dev/fuse`) is a normal end; the private pair is then shut down, so `fuser`'s workers
//! see end of file too.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::io::Errno;
use rustix::net::{AddressFamily, Shutdown, SocketFlags, SocketType};

/// The size of a `fuse_in_header`.
const IN_HEADER_LEN: usize = 40;
/// The size of a `fuse_out_header`.
const OUT_HEADER_LEN: usize = 16;
/// Read buffer of each direction: larger than any message of a 128 KiB `max_write` session.
const BUFFER_LEN: usize = 1 << 20;

/// The running guard.
pub(crate) struct MessageGuard {
    /// Set once the channel ended normally (end of file, or `ENODEV`).
    channel_ended: Arc<AtomicBool>,
    /// A second fd of the channel, to shut a socket channel down when serving stops first.
    channel_control: OwnedFd,
    /// The guard's end of the private pair, to shut it down.
    private_control: OwnedFd,
}

/// Whether `message` is a request `fuser` can parse without panicking.
pub(crate) fn well_formed(message: &[u8]) -> bool {
    let Some(len_bytes) = message.get(0..4) else {
        return false;
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(len_bytes);
    let claimed = u32::from_ne_bytes(len) as usize;
    message.len() >= IN_HEADER_LEN && claimed == message.len()
}

/// The error reply (`-EIO`) to a malformed request that at least carries its request id.
pub(crate) fn error_reply(message: &[u8]) -> Option<[u8; OUT_HEADER_LEN]> {
    let unique = message.get(8..16)?;
    let mut reply = [0u8; OUT_HEADER_LEN];
    reply[0..4].copy_from_slice(&(OUT_HEADER_LEN as u32).to_ne_bytes());
    reply[4..8].copy_from_slice(&(-libc::EIO).to_ne_bytes());
    reply[8..16].copy_from_slice(unique);
    Some(reply)
}

/// Reads one message, retrying what the FUSE device asks to retry. `None` at the end.
fn read_message(fd: &OwnedFd, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(0) => return Ok(None),
            Ok(n) => return Ok(Some(n)),
            // ENOENT: the request was interrupted before it was read (`/dev/fuse`).
            Err(Errno::INTR | Errno::AGAIN | Errno::NOENT) => {}
            Err(Errno::NODEV) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

impl MessageGuard {
    /// Starts the relay threads on `channel` and returns the guard and the fd `fuser` serves.
    pub(crate) fn start(channel: OwnedFd) -> std::io::Result<(Self, OwnedFd)> {
        let (private, for_fuser) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        for end in [&private, &for_fuser] {
            // Room for the largest message (a seqpacket message must fit the send buffer).
            rustix::net::sockopt::set_socket_send_buffer_size(end, 4 * BUFFER_LEN)?;
        }
        let guard = MessageGuard {
            channel_ended: Arc::new(AtomicBool::new(false)),
            channel_control: channel.try_clone()?,
            private_control: private.try_clone()?,
        };
        let inbound = Inbound {
            channel: channel.try_clone()?,
            private: private.try_clone()?,
            channel_ended: guard.channel_ended.clone(),
        };
        std::thread::Builder::new()
            .name("fileshare-in".into())
            .spawn(move || inbound.run())?;
        std::thread::Builder::new()
            .name("fileshare-out".into())
            .spawn(move || relay_replies(&private, &channel))?;
        Ok((guard, for_fuser))
    }

    /// Whether the channel has ended normally.
    pub(crate) fn channel_ended(&self) -> bool {
        self.channel_ended.load(Ordering::SeqCst)
    }

    /// Stops relaying: the private pair is shut down, and a socket channel too (a `/dev/fuse`
    /// channel ends with its mount; its relay thread goes then).
    pub(crate) fn stop(&self) {
        let _ = rustix::net::shutdown(&self.private_control, Shutdown::Both);
        let _ = rustix::net::shutdown(&self.channel_control, Shutdown::Both);
    }
}

/// The channel → `fuser` direction.
struct Inbound {
    channel: OwnedFd,
    private: OwnedFd,
    channel_ended: Arc<AtomicBool>,
}

impl Inbound {
    fn run(self) {
        let mut buf = vec![0u8; BUFFER_LEN];
        loop {
            let n = match read_message(&self.channel, &mut buf) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    self.channel_ended.store(true, Ordering::SeqCst);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "file share: reading the channel failed");
                    break;
                }
            };
            let message = &buf[..n];
            if well_formed(message) {
                if rustix::io::write(&self.private, message).is_err() {
                    break;
                }
            } else {
                tracing::debug!(len = n, "file share: malformed request dropped");
                if let Some(reply) = error_reply(message) {
                    let _ = rustix::io::write(&self.channel, &reply);
                }
            }
        }
        let _ = rustix::net::shutdown(self.private.as_fd(), Shutdown::Both);
    }
}

/// The `fuser` → channel direction: replies pass unchanged, one message per write.
fn relay_replies(private: &OwnedFd, channel: &OwnedFd) {
    let mut buf = vec![0u8; BUFFER_LEN];
    while let Ok(Some(n)) = read_message(private, &mut buf) {
        match rustix::io::write(channel, &buf[..n]) {
            Ok(_) => {}
            // `/dev/fuse`: the request this answers was interrupted and is gone.
            Err(Errno::NOENT | Errno::INTR) => {}
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_requests_pass() {
        let mut request = vec![0u8; 64];
        request[0..4].copy_from_slice(&64u32.to_ne_bytes());
        assert!(well_formed(&request));
        request[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(!well_formed(&request), "a header claiming less than itself");
        request[0..4].copy_from_slice(&65u32.to_ne_bytes());
        assert!(!well_formed(&request));
        assert!(!well_formed(&[8, 0, 0, 0]));
        assert!(!well_formed(&[]));
    }

    #[test]
    fn error_replies_carry_the_request_id() {
        let mut request = vec![0u8; 20];
        request[8..16].copy_from_slice(&77u64.to_ne_bytes());
        let reply = error_reply(&request).expect("reply");
        assert_eq!(&reply[0..4], &16u32.to_ne_bytes());
        assert_eq!(&reply[4..8], &(-libc::EIO).to_ne_bytes());
        assert_eq!(&reply[8..16], &77u64.to_ne_bytes());
        assert!(error_reply(&request[..10]).is_none());
    }
}
