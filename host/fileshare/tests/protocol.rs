//! `serve` on a seqpacket channel driven by hand-written FUSE messages, as a hostile guest
//! could send them: the handshake negotiates 128 KiB writes, malformed and hostile requests
//! get errors (never a panic), and closing the channel ends `serve` with `Ok`. Needs no root.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use vmrun_fileshare::{serve, ShareError, ShareOptions};

const FUSE_LOOKUP: u32 = 1;
const FUSE_GETATTR: u32 = 3;
const FUSE_READ: u32 = 15;
const FUSE_INIT: u32 = 26;
const FUSE_OPENDIR: u32 = 27;
const FUSE_READDIR: u32 = 28;
const FUSE_READDIRPLUS: u32 = 44;

struct Guest {
    fd: OwnedFd,
    served: mpsc::Receiver<Result<(), ShareError>>,
    _root: tempfile::TempDir,
}

fn start(read_only: bool) -> Guest {
    let root = tempfile::tempdir().expect("root");
    std::fs::write(root.path().join("file"), b"content").expect("file");
    for i in 0..40 {
        std::fs::write(root.path().join(format!("entry-{i:02}")), b"").expect("entry");
    }
    let (guest, host) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let options = ShareOptions {
        root: root.path().to_path_buf(),
        read_only,
    };
    let (tx, served) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(serve(host, options));
    });
    Guest {
        fd: guest,
        served,
        _root: root,
    }
}

/// A request: `fuse_in_header` (len, opcode, unique, nodeid, uid, gid, pid, extlen, pad)
/// and the body.
fn request(opcode: u32, unique: u64, nodeid: u64, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((40 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&opcode.to_ne_bytes());
    m.extend_from_slice(&unique.to_ne_bytes());
    m.extend_from_slice(&nodeid.to_ne_bytes());
    m.extend_from_slice(&[0u8; 16]); // uid, gid, pid, total_extlen, padding
    m.extend_from_slice(body);
    m
}

impl Guest {
    fn send(&self, message: &[u8]) {
        send(self.fd.as_raw_fd(), message, MsgFlags::empty()).expect("send");
    }

    /// The next reply: (error, unique, body).
    fn reply(&self) -> (i32, u64, Vec<u8>) {
        let mut buf = vec![0u8; 1 << 20];
        let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).expect("recv");
        assert!(n >= 16, "short reply of {n} bytes");
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("4")) as usize;
        assert_eq!(len, n, "reply length field");
        let error = i32::from_ne_bytes(buf[4..8].try_into().expect("4"));
        let unique = u64::from_ne_bytes(buf[8..16].try_into().expect("8"));
        (error, unique, buf[16..n].to_vec())
    }

    fn handshake(&self) -> Vec<u8> {
        let mut init = Vec::new();
        for word in [7u32, 31, 128 * 1024, 0, 0] {
            init.extend_from_slice(&word.to_ne_bytes());
        }
        init.extend_from_slice(&[0u8; 44]);
        self.send(&request(FUSE_INIT, 1, 0, &init));
        let (error, unique, body) = self.reply();
        assert_eq!((error, unique), (0, 1), "INIT answered");
        body
    }

    fn finish(self) {
        drop(self.fd);
        match self.served.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("serve failed: {e}"),
            Err(e) => panic!("serve did not end when the channel closed: {e}"),
        }
    }
}

#[test]
fn the_handshake_negotiates_128k_writes() {
    let guest = start(false);
    let init_out = guest.handshake();
    let word = |at: usize| u32::from_ne_bytes(init_out[at..at + 4].try_into().expect("4"));
    assert_eq!(word(0), 7, "major");
    assert_eq!(word(20), 128 * 1024, "max_write");
    assert!(word(8) <= 128 * 1024, "max_readahead");
    guest.finish();
}

#[test]
fn malformed_and_hostile_requests_get_errors() {
    let guest = start(false);
    guest.handshake();

    // A header claiming fewer bytes than a header: answered EIO (fuser would panic on it).
    let mut lying = request(FUSE_GETATTR, 2, 1, &[0u8; 16]);
    lying[0..4].copy_from_slice(&8u32.to_ne_bytes());
    guest.send(&lying);
    assert_eq!(guest.reply(), (-libc::EIO, 2, Vec::new()));
    // Too short to carry even a request id: dropped; the next request is still served.
    guest.send(&[1, 2, 3]);

    let lookup = |unique: u64, name: &[u8]| {
        let mut body = name.to_vec();
        body.push(0);
        guest.send(&request(FUSE_LOOKUP, unique, 1, &body));
        guest.reply()
    };
    assert_eq!(lookup(3, b"..").0, -libc::EINVAL);
    assert_eq!(lookup(4, b"../etc").0, -libc::EINVAL);
    assert_eq!(lookup(5, b"missing").0, -libc::ENOENT);
    let (error, unique, entry) = lookup(6, b"file");
    assert_eq!((error, unique), (0, 6));
    let nodeid = u64::from_ne_bytes(entry[0..8].try_into().expect("8"));
    assert!(nodeid > 1);

    // Requests on node ids the server never gave out.
    guest.send(&request(FUSE_GETATTR, 7, 424_242, &[0u8; 16]));
    assert_eq!(guest.reply().0, -libc::ENOENT);
    guest.send(&request(FUSE_LOOKUP, 8, 424_242, b"x\0"));
    assert_eq!(guest.reply().0, -libc::ENOENT);

    // A read of gigabytes on a handle that does not exist.
    let mut read_in = Vec::new();
    read_in.extend_from_slice(&999u64.to_ne_bytes()); // fh
    read_in.extend_from_slice(&0u64.to_ne_bytes()); // offset
    read_in.extend_from_slice(&u32::MAX.to_ne_bytes()); // size
    read_in.extend_from_slice(&[0u8; 20]); // read_flags, lock_owner, flags, padding
    guest.send(&request(FUSE_READ, 9, nodeid, &read_in));
    assert_eq!(guest.reply().0, -libc::EBADF);

    // A request cut short of its body, and an unknown opcode.
    guest.send(&request(FUSE_READ, 10, nodeid, &[0u8; 4]));
    assert!(guest.reply().0 < 0);
    guest.send(&request(9999, 11, 1, &[]));
    assert!(guest.reply().0 < 0);

    // Still serving.
    guest.send(&request(FUSE_GETATTR, 12, 1, &[0u8; 16]));
    assert_eq!(guest.reply().0, 0);
    guest.finish();
}

#[test]
fn a_channel_closed_before_the_handshake_is_a_handshake_error() {
    let guest = start(true);
    drop(guest.fd);
    let result = guest
        .served
        .recv_timeout(Duration::from_secs(20))
        .expect("serve returned");
    assert!(
        matches!(result, Err(ShareError::Handshake(_))),
        "{result:?}"
    );
}

#[test]
fn a_bad_root_is_named() {
    let (_guest, host) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let result = serve(
        host,
        ShareOptions {
            root: "/nonexistent/share".into(),
            read_only: false,
        },
    );
    assert!(matches!(result, Err(ShareError::Root { .. })), "{result:?}");
}

/// `fuse_read_in` for a READDIR(PLUS) of `size` bytes at `offset` on handle `fh`.
fn read_in(fh: u64, offset: u64, size: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&fh.to_ne_bytes());
    body.extend_from_slice(&offset.to_ne_bytes());
    body.extend_from_slice(&size.to_ne_bytes());
    body.extend_from_slice(&[0u8; 20]);
    body
}

/// The (name, next offset) of each entry in a READDIR or READDIRPLUS reply body.
fn entries(body: &[u8], plus: bool) -> Vec<(String, u64)> {
    let skip = if plus { 128 } else { 0 }; // fuse_entry_out before each fuse_dirent
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let dirent = &body[at + skip..];
        let off = u64::from_ne_bytes(dirent[8..16].try_into().expect("8"));
        let namelen = u32::from_ne_bytes(dirent[16..20].try_into().expect("4")) as usize;
        let name = String::from_utf8_lossy(&dirent[24..24 + namelen]).into_owned();
        out.push((name, off));
        at += (skip + 24 + namelen).next_multiple_of(8);
    }
    out
}

#[test]
fn directory_listings_page_with_stable_offsets() {
    let guest = start(false);
    guest.handshake();
    let mut unique = 100;
    for (opcode, plus) in [(FUSE_READDIR, false), (FUSE_READDIRPLUS, true)] {
        unique += 1;
        guest.send(&request(FUSE_OPENDIR, unique, 1, &[0u8; 8]));
        let (error, _, open_out) = guest.reply();
        assert_eq!(error, 0, "opendir");
        let fh = u64::from_ne_bytes(open_out[0..8].try_into().expect("8"));
        let mut offset = 0;
        let mut names = Vec::new();
        loop {
            unique += 1;
            // Room for a few entries a page.
            guest.send(&request(opcode, unique, 1, &read_in(fh, offset, 400)));
            let (error, _, body) = guest.reply();
            assert_eq!(error, 0, "readdir at {offset}");
            let page = entries(&body, plus);
            if page.is_empty() {
                break;
            }
            for (name, next) in page {
                assert!(next > offset, "offsets grow");
                offset = next;
                names.push(name);
            }
        }
        let mut expected: Vec<String> = (0..40).map(|i| format!("entry-{i:02}")).collect();
        expected.extend([".".into(), "..".into(), "file".into()]);
        expected.sort();
        names.sort();
        assert_eq!(names, expected, "plus: {plus}");
    }
    guest.finish();
}

/// A small deterministic generator for the fuzz test.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn random_requests_never_stop_the_server() {
    for seed in [0x5eed, 7, 0xdead_beef] {
        fuzz_one_server(seed);
    }
}

/// Sends 3000 random requests (opcodes, node ids, bodies around the argument sizes) to one
/// server, then checks that it still answers.
fn fuzz_one_server(seed: u64) {
    const FUSE_DESTROY: u32 = 38;
    let guest = start(false);
    guest.handshake();
    // Replies are read as they come, as the guest kernel does (some opcodes get none).
    let reader_fd = guest.fd.try_clone().expect("dup");
    let timeout = nix::sys::time::TimeVal::new(30, 0);
    nix::sys::socket::setsockopt(
        &reader_fd,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &timeout,
    )
    .expect("SO_RCVTIMEO");
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = recv(reader_fd.as_raw_fd(), &mut buf, MsgFlags::empty()).expect("recv");
            assert!(n >= 16, "short reply");
            let error = i32::from_ne_bytes(buf[4..8].try_into().expect("4"));
            let unique = u64::from_ne_bytes(buf[8..16].try_into().expect("8"));
            if unique == 99_999 {
                return error;
            }
        }
    });
    let mut rng = Lcg(seed);
    for i in 0..3000u64 {
        let mut opcode = (rng.next() % 54) as u32;
        if opcode == FUSE_DESTROY {
            opcode = FUSE_GETATTR;
        }
        let nodeid = match rng.next() % 3 {
            0 => 1,
            1 => rng.next() % 8,
            _ => rng.next(),
        };
        // Around the sizes of the argument structs, so that parsing gets past them.
        let len = match rng.next() % 4 {
            0 => rng.next() % 200,
            1 => 8 + rng.next() % 16,
            2 => 40 + rng.next() % 48,
            _ => 88 + rng.next() % 24,
        } as usize;
        let body: Vec<u8> = (0..len)
            .map(|_| match rng.next() % 4 {
                0 => 0,
                _ => b'a' + (rng.next() % 26) as u8,
            })
            .collect();
        guest.send(&request(opcode, 1000 + i, nodeid, &body));
    }
    // Still serving: a last GETATTR is answered (after whatever replies came before it).
    guest.send(&request(FUSE_GETATTR, 99_999, 1, &[0u8; 16]));
    assert_eq!(reader.join().expect("reader"), 0);
    guest.finish();
}
