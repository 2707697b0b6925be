//! The guard between the share's channel and `fuser`. The channel carries what a guest sent,
//! and a guest is not trusted: `fuser` panics on a request whose header claims fewer bytes
//! than a header (it slices `data[40..len]`). So `fuser` reads from a private seqpacket pair
//! instead, and a relay thread passes on only messages it can parse ([`check_request`]:
//! a whole header giving the exact length, and the few argument checks whose absence makes
//! `fuser` panic, found by fuzzing); anything else is answered with an error (when it has a
//! request id to answer) and dropped. Replies go back unchanged.
//!
//! The relay also tells how the channel ended: end of file, `ECONNRESET` or `ENODEV` (an
//! unmounted `/dev/fuse`) is a normal end; the private pair is then shut down, so `fuser`'s workers
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

const FUSE_SETATTR: u32 = 4;
const FUSE_INTERRUPT: u32 = 36;
const FUSE_NOTIFY_REPLY: u32 = 41;
const FUSE_WRITE: u32 = 16;
const FUSE_SETXATTR: u32 = 21;
/// `fuse_write_in`: `size` at 16, the data after 40 bytes.
const WRITE_IN_LEN: usize = 40;
/// `fuse_setxattr_in` as `fuser` reads it (no `FUSE_SETXATTR_EXT`): `size` at 0.
const SETXATTR_IN_LEN: usize = 8;
/// `fuse_setattr_in`: atime/mtime/ctime seconds at 32/40/48, their nanoseconds at 56/60/64.
const SETATTR_IN_LEN: usize = 88;
/// The widest timestamp let through (about 146 billion years): `fuser` turns the seconds
/// into a `SystemTime` and would overflow (panic) near `i64::MAX`.
const MAX_TIME_SECS: i64 = 1 << 62;

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes.get(at..at + 4)?);
    Some(u32::from_ne_bytes(word))
}

fn i64_at(bytes: &[u8], at: usize) -> Option<i64> {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes.get(at..at + 8)?);
    Some(i64::from_ne_bytes(word))
}

/// The operations passed on to `fuser`: what the share implements, and the protocol's own
/// (INIT, DESTROY, FORGET, BATCH_FORGET). Everything else (ioctl, poll, locks, bmap, lseek,
/// copy_file_range, tmpfile, statx...) is answered `ENOSYS` here, which the guest kernel
/// takes as "not supported" and falls back where it can; `fuser` never parses it.
const SERVED_OPCODES: [u32; 35] = [
    1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24, 25, 26, 27, 28,
    29, 30, 34, 35, 38, 42, 43, 44, 45,
];

/// Whether a request refused by [`check_request`] is answered: INTERRUPT and NOTIFY_REPLY
/// never are.
pub(crate) fn expects_reply(message: &[u8]) -> bool {
    !matches!(
        u32_at(message, 4),
        Some(FUSE_INTERRUPT | FUSE_NOTIFY_REPLY | 2 | 42)
    )
}

/// Checks a request before `fuser` parses it: `Err(errno)` for one it would panic on. The
/// header must be whole and give the message's exact length (`EIO` otherwise); a WRITE's or
/// SETXATTR's data must be as long as its `size` says, and SETATTR's times in range
/// (`EINVAL` otherwise). Bodies too short for their argument are left to `fuser`, which
/// answers them with an error.
pub(crate) fn check_request(message: &[u8]) -> Result<(), i32> {
    let claimed = u32_at(message, 0).ok_or(libc::EIO)? as usize;
    if message.len() < IN_HEADER_LEN || claimed != message.len() {
        return Err(libc::EIO);
    }
    let opcode = u32_at(message, 4).ok_or(libc::EIO)?;
    if !SERVED_OPCODES.contains(&opcode) {
        return Err(libc::ENOSYS);
    }
    let body = &message[IN_HEADER_LEN..];
    match opcode {
        FUSE_WRITE if body.len() >= WRITE_IN_LEN => {
            let size = u32_at(body, 16).ok_or(libc::EINVAL)? as usize;
            if body.len() - WRITE_IN_LEN != size {
                return Err(libc::EINVAL);
            }
        }
        FUSE_SETXATTR if body.len() >= SETXATTR_IN_LEN => {
            let size = u32_at(body, 0).ok_or(libc::EINVAL)? as usize;
            let rest = &body[SETXATTR_IN_LEN..];
            if let Some(nul) = rest.iter().position(|b| *b == 0) {
                if rest.len() - nul - 1 != size {
                    return Err(libc::EINVAL);
                }
            }
        }
        FUSE_SETATTR if body.len() >= SETATTR_IN_LEN => {
            for (secs_at, nsecs_at) in [(32, 56), (40, 60), (48, 64)] {
                let secs = i64_at(body, secs_at).ok_or(libc::EINVAL)?;
                let nsecs = u32_at(body, nsecs_at).ok_or(libc::EINVAL)?;
                if !(-MAX_TIME_SECS..=MAX_TIME_SECS).contains(&secs) || nsecs >= 1_000_000_000 {
                    return Err(libc::EINVAL);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The error reply (`-errno`) to a refused request that at least carries its request id.
pub(crate) fn error_reply(message: &[u8], errno: i32) -> Option<[u8; OUT_HEADER_LEN]> {
    let unique = message.get(8..16)?;
    let mut reply = [0u8; OUT_HEADER_LEN];
    reply[0..4].copy_from_slice(&(OUT_HEADER_LEN as u32).to_ne_bytes());
    reply[4..8].copy_from_slice(&(-errno).to_ne_bytes());
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
            // ENODEV: `/dev/fuse` unmounted. ECONNRESET: the peer closed a socket channel
            // with replies still unread in its queue (a guest going away does).
            Err(Errno::NODEV | Errno::CONNRESET) => return Ok(None),
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
            match check_request(message) {
                Ok(()) => {
                    if rustix::io::write(&self.private, message).is_err() {
                        break;
                    }
                }
                Err(errno) => {
                    tracing::debug!(len = n, errno, "file share: malformed request refused");
                    let reply = error_reply(message, errno).filter(|_| expects_reply(message));
                    if let Some(reply) = reply {
                        let _ = rustix::io::write(&self.channel, &reply);
                    }
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

    fn message(opcode: u32, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; IN_HEADER_LEN];
        m[0..4].copy_from_slice(&((IN_HEADER_LEN + body.len()) as u32).to_ne_bytes());
        m[4..8].copy_from_slice(&opcode.to_ne_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn only_whole_requests_pass() {
        let mut request = message(3, &[0u8; 24]);
        assert_eq!(check_request(&request), Ok(()));
        request[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(
            check_request(&request),
            Err(libc::EIO),
            "a header claiming less"
        );
        request[0..4].copy_from_slice(&65u32.to_ne_bytes());
        assert_eq!(check_request(&request), Err(libc::EIO));
        assert_eq!(check_request(&[8, 0, 0, 0]), Err(libc::EIO));
        assert_eq!(check_request(&[]), Err(libc::EIO));
    }

    #[test]
    fn operations_the_share_does_not_serve_never_reach_fuser() {
        // IOCTL with an in_size past its data made fuser panic (found by fuzzing).
        assert_eq!(check_request(&message(39, &[0xff; 64])), Err(libc::ENOSYS));
        assert_eq!(check_request(&message(7, &[])), Err(libc::ENOSYS));
        assert_eq!(check_request(&message(9999, &[])), Err(libc::ENOSYS));
        assert!(!expects_reply(&message(FUSE_INTERRUPT, &[0u8; 8])));
        assert!(expects_reply(&message(39, &[])));
        assert_eq!(check_request(&message(1, b"name\0")), Ok(()));
    }

    #[test]
    fn data_must_match_its_size() {
        let mut write_in = vec![0u8; WRITE_IN_LEN];
        write_in[16..20].copy_from_slice(&3u32.to_ne_bytes());
        write_in.extend_from_slice(b"abc");
        assert_eq!(check_request(&message(FUSE_WRITE, &write_in)), Ok(()));
        write_in.push(b'd');
        assert_eq!(
            check_request(&message(FUSE_WRITE, &write_in)),
            Err(libc::EINVAL)
        );
        assert_eq!(
            check_request(&message(FUSE_WRITE, &[0u8; 8])),
            Ok(()),
            "short: fuser's"
        );

        let mut setxattr_in = vec![0u8; SETXATTR_IN_LEN];
        setxattr_in[0..4].copy_from_slice(&2u32.to_ne_bytes());
        setxattr_in.extend_from_slice(b"user.x\0ab");
        assert_eq!(check_request(&message(FUSE_SETXATTR, &setxattr_in)), Ok(()));
        setxattr_in.pop();
        assert_eq!(
            check_request(&message(FUSE_SETXATTR, &setxattr_in)),
            Err(libc::EINVAL)
        );
    }

    #[test]
    fn setattr_times_must_be_in_range() {
        let mut setattr_in = vec![0u8; SETATTR_IN_LEN];
        setattr_in[32..40].copy_from_slice(&1_700_000_000i64.to_ne_bytes());
        setattr_in[48..56].copy_from_slice(&(-5i64).to_ne_bytes());
        assert_eq!(check_request(&message(FUSE_SETATTR, &setattr_in)), Ok(()));
        setattr_in[40..48].copy_from_slice(&i64::MAX.to_ne_bytes());
        assert_eq!(
            check_request(&message(FUSE_SETATTR, &setattr_in)),
            Err(libc::EINVAL)
        );
        setattr_in[40..48].copy_from_slice(&0i64.to_ne_bytes());
        setattr_in[64..68].copy_from_slice(&1_000_000_000u32.to_ne_bytes());
        assert_eq!(
            check_request(&message(FUSE_SETATTR, &setattr_in)),
            Err(libc::EINVAL)
        );
    }

    #[test]
    fn error_replies_carry_the_request_id() {
        let mut request = vec![0u8; 20];
        request[8..16].copy_from_slice(&77u64.to_ne_bytes());
        let reply = error_reply(&request, libc::EIO).expect("reply");
        assert_eq!(&reply[0..4], &16u32.to_ne_bytes());
        assert_eq!(&reply[4..8], &(-libc::EIO).to_ne_bytes());
        assert_eq!(&reply[8..16], &77u64.to_ne_bytes());
        assert!(error_reply(&request[..10], libc::EIO).is_none());
    }
}
