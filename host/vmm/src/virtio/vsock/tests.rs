//! Device-level vsock tests: a driver-side "guest" over `virtio-queue`'s mock split queues in
//! real guest memory, against real Unix sockets on the host side.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::connection::CONN_BUF_ALLOC;
use super::packet::{op, Packet, VsockHeader, HDR_SIZE, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM};
use super::VsockDevice;
use crate::virtio::testing::{test_memory, DriverQueue};
use crate::virtio::{IrqTrigger, VirtioDevice};

const CID: u64 = 3;
const RX_BUF: u64 = 0x10_0000;
const RX_BUF_SIZE: u32 = 0x2000;
const TX_BUF: u64 = 0x100_0000;
const TX_SLOT: u64 = 0x1_1000;

pub(super) struct Guest<'a> {
    mem: &'a GuestMemoryMmap,
    rxq: DriverQueue<'a>,
    txq: DriverQueue<'a>,
    rx_seen: u16,
    rx_bufs: HashMap<u32, u64>,
    tx_slot: u64,
    pub(super) dev: VsockDevice,
    _dir: tempfile::TempDir,
    pub(super) path: PathBuf,
    /// Credit the guest advertises.
    buf_alloc: u32,
    fwd_cnt: u32,
}

impl<'a> Guest<'a> {
    pub(super) fn new(mem: &'a GuestMemoryMmap) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.sock");
        let mut dev = VsockDevice::new(CID, &path).unwrap();
        let mut rxq = DriverQueue::new(mem, 0, 256);
        let txq = DriverQueue::new(mem, 0x1_0000, 256);
        let evq = DriverQueue::new(mem, 0x2_0000, 256);
        let mut rx_bufs = HashMap::new();
        for i in 0..64u64 {
            let addr = RX_BUF + i * u64::from(RX_BUF_SIZE);
            let head = rxq.add(&[(addr, RX_BUF_SIZE, true)]);
            rx_bufs.insert(u32::from(head), addr);
        }
        let irq = IrqTrigger::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        dev.activate(
            mem.clone(),
            vec![rxq.device_queue(), txq.device_queue(), evq.device_queue()],
            irq,
        )
        .unwrap();
        Guest {
            mem,
            rxq,
            txq,
            rx_seen: 0,
            rx_bufs,
            tx_slot: 0,
            dev,
            _dir: dir,
            path,
            buf_alloc: CONN_BUF_ALLOC,
            fwd_cnt: 0,
        }
    }

    fn hdr(&self, src_port: u32, dst_port: u32, op: u16, len: u32) -> VsockHeader {
        VsockHeader {
            src_cid: CID,
            dst_cid: 2,
            src_port,
            dst_port,
            len,
            type_: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc: self.buf_alloc,
            fwd_cnt: self.fwd_cnt,
        }
    }

    fn send_hdr(&mut self, hdr: VsockHeader, data: &[u8]) {
        let addr = TX_BUF + (self.tx_slot % 200) * TX_SLOT;
        self.tx_slot += 1;
        self.mem
            .write_slice(&hdr.to_bytes(), GuestAddress(addr))
            .unwrap();
        if data.is_empty() {
            self.txq.add(&[(addr, HDR_SIZE as u32, false)]);
        } else {
            let daddr = addr + 0x100;
            self.mem.write_slice(data, GuestAddress(daddr)).unwrap();
            self.txq.add(&[
                (addr, HDR_SIZE as u32, false),
                (daddr, data.len() as u32, false),
            ]);
        }
        self.dev.process_queue(1);
    }

    /// Guest port `gp` sends `op` to host port `hp`.
    pub(super) fn send(&mut self, gp: u32, hp: u32, op: u16, data: &[u8]) {
        let hdr = self.hdr(gp, hp, op, data.len() as u32);
        self.send_hdr(hdr, data);
    }

    fn send_flags(&mut self, gp: u32, hp: u32, op: u16, flags: u32) {
        let mut hdr = self.hdr(gp, hp, op, 0);
        hdr.flags = flags;
        self.send_hdr(hdr, &[]);
    }

    /// Packets the device put on the RX queue since last time (buffers are recycled).
    pub(super) fn recv(&mut self) -> Vec<Packet> {
        let mut out = Vec::new();
        while self.rx_seen != self.rxq.used_idx() {
            let (head, len) = self.rxq.used(self.rx_seen);
            self.rx_seen = self.rx_seen.wrapping_add(1);
            let addr = self
                .rx_bufs
                .remove(&head)
                .expect("used head is one of our rx buffers");
            let mut bytes = vec![0u8; len as usize];
            self.mem.read_slice(&mut bytes, GuestAddress(addr)).unwrap();
            let hdr = VsockHeader::parse(&bytes).unwrap();
            assert_eq!(hdr.len as usize, bytes.len() - HDR_SIZE);
            out.push(Packet {
                hdr,
                data: bytes[HDR_SIZE..].to_vec(),
            });
            let new_head = self.rxq.add(&[(addr, RX_BUF_SIZE, true)]);
            self.rx_bufs.insert(u32::from(new_head), addr);
        }
        if !out.is_empty() {
            self.dev.process_queue(0);
        }
        out
    }

    /// Waits up to `ms` for host-side events and lets the device handle them.
    pub(super) fn pump(&mut self, ms: i32) -> bool {
        let fd = self.dev.backend_fd().unwrap();
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: valid pollfd, nfds 1.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            self.dev.process_backend();
        }
        n > 0
    }

    /// Pumps until `pred` holds for the packets received so far, returning them.
    pub(super) fn recv_until(&mut self, pred: impl Fn(&[Packet]) -> bool) -> Vec<Packet> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = self.recv();
        while !pred(&got) {
            assert!(Instant::now() < deadline, "timed out; got {got:?}");
            self.pump(50);
            got.extend(self.recv());
        }
        got
    }

    /// Host client: connect, handshake for guest port `gp`; the guest accepts. Returns the
    /// stream and the host-side port.
    pub(super) fn host_connect(&mut self, gp: u32) -> (UnixStream, u32) {
        let mut client = UnixStream::connect(&self.path).unwrap();
        client
            .write_all(format!("CONNECT {gp}\n").as_bytes())
            .unwrap();
        let pkts = self.recv_until(|p| !p.is_empty());
        assert_eq!(pkts.len(), 1);
        let req = pkts[0].hdr;
        assert_eq!({ req.op }, op::REQUEST);
        assert_eq!({ req.dst_port }, gp);
        assert_eq!({ req.dst_cid }, CID);
        let hp = req.src_port;
        self.send(gp, hp, op::RESPONSE, &[]);
        let line = read_line(&mut client);
        assert_eq!(line, format!("OK {hp}\n"));
        (client, hp)
    }
}

pub(super) fn read_line(s: &mut UnixStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8];
    while s.read(&mut b).unwrap() == 1 {
        line.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    String::from_utf8(line).unwrap()
}

pub(super) fn read_n(s: &mut UnixStream, n: usize) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

fn expect_eof(s: &mut UnixStream) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 16];
    assert_eq!(s.read(&mut b).unwrap(), 0, "expected EOF");
}

/// The VMM closed the stream (EOF, or a reset because our bytes were never read).
pub(super) fn expect_closed(s: &mut UnixStream) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the stream to be closed, got {other:?}"),
    }
}

pub(super) fn data_of(pkts: &[Packet]) -> Vec<u8> {
    pkts.iter()
        .filter(|p| p.hdr.op == op::RW)
        .flat_map(|p| p.data.clone())
        .collect()
}

#[test]
fn host_connect_handshake_and_data_both_ways() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    let (mut client, hp) = g.host_connect(1234);
    assert_eq!(hp, 1 << 30);
    client.write_all(b"ping").unwrap();
    let pkts = g.recv_until(|p| data_of(p).len() >= 4);
    assert_eq!(data_of(&pkts), b"ping");
    assert_eq!({ pkts[0].hdr.src_port }, hp);
    assert_eq!({ pkts[0].hdr.dst_port }, 1234);
    g.send(1234, hp, op::RW, b"pong");
    assert_eq!(read_n(&mut client, 4), b"pong");
    assert_eq!(g.dev.muxer().connection_count(), 1);
}

#[test]
fn bytes_after_the_handshake_line_are_kept() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    let mut client = UnixStream::connect(&g.path).unwrap();
    client.write_all(b"CONNECT 77\nearly").unwrap();
    let req = g.recv_until(|p| !p.is_empty())[0].hdr;
    g.send(77, req.src_port, op::RESPONSE, &[]);
    assert_eq!(read_line(&mut client), format!("OK {}\n", { req.src_port }));
    let pkts = g.recv_until(|p| data_of(p).len() >= 5);
    assert_eq!(data_of(&pkts), b"early");
}

#[test]
fn garbage_and_oversize_handshakes_are_dropped() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    let mut bad = UnixStream::connect(&g.path).unwrap();
    bad.write_all(b"HELLO there\n").unwrap();
    let mut long = UnixStream::connect(&g.path).unwrap();
    long.write_all(&[b'C'; 100]).unwrap();
    for _ in 0..10 {
        g.pump(50);
    }
    expect_closed(&mut bad);
    expect_closed(&mut long);
    assert!(g.recv().is_empty(), "nothing reaches the guest");
    assert_eq!(g.dev.muxer().connection_count(), 0);
}

#[test]
fn guest_refusal_closes_the_host_stream() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    let mut client = UnixStream::connect(&g.path).unwrap();
    client.write_all(b"CONNECT 9\n").unwrap();
    let req = g.recv_until(|p| !p.is_empty())[0].hdr;
    g.send(9, req.src_port, op::RST, &[]);
    expect_eof(&mut client);
    assert_eq!(g.dev.muxer().connection_count(), 0);
}

#[test]
fn guest_connects_to_path_underscore_port() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    let listener = UnixListener::bind(format!("{}_5000", g.path.display())).unwrap();
    g.send(777, 5000, op::REQUEST, &[]);
    let pkts = g.recv_until(|p| !p.is_empty());
    assert_eq!({ pkts[0].hdr.op }, op::RESPONSE);
    assert_eq!({ pkts[0].hdr.src_port }, 5000);
    assert_eq!({ pkts[0].hdr.dst_port }, 777);
    let (mut host, _) = listener.accept().unwrap();
    g.send(777, 5000, op::RW, b"hi");
    assert_eq!(read_n(&mut host, 2), b"hi");
    host.write_all(b"yo").unwrap();
    let pkts = g.recv_until(|p| data_of(p).len() >= 2);
    assert_eq!(data_of(&pkts), b"yo");

    // Nobody listens on port 5001: RST.
    g.send(778, 5001, op::REQUEST, &[]);
    let pkts = g.recv_until(|p| !p.is_empty());
    assert_eq!({ pkts[0].hdr.op }, op::RST);
    assert_eq!({ pkts[0].hdr.dst_port }, 778);
    // Data on an unknown connection: RST too.
    g.send(779, 5002, op::RW, b"x");
    assert_eq!({ g.recv_until(|p| !p.is_empty())[0].hdr.op }, op::RST);
}

#[test]
fn host_to_guest_respects_guest_credit() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    g.buf_alloc = 4096;
    let (mut client, hp) = g.host_connect(1);
    client.write_all(&vec![7u8; 10_000]).unwrap();
    let pkts = g.recv_until(|p| data_of(p).len() >= 4096);
    assert_eq!(data_of(&pkts).len(), 4096);
    // No more credit: nothing more arrives.
    for _ in 0..5 {
        g.pump(20);
    }
    assert!(data_of(&g.recv()).is_empty());
    // The guest consumed it all.
    g.fwd_cnt = 4096;
    g.send(1, hp, op::CREDIT_UPDATE, &[]);
    let pkts = g.recv_until(|p| data_of(p).len() >= 4096);
    assert_eq!(data_of(&pkts).len(), 4096);
    // Credit request is answered with our credit.
    g.send(1, hp, op::CREDIT_REQUEST, &[]);
    let pkts = g.recv_until(|p| p.iter().any(|p| p.hdr.op == op::CREDIT_UPDATE));
    let upd = pkts.iter().find(|p| p.hdr.op == op::CREDIT_UPDATE).unwrap();
    assert_eq!({ upd.hdr.buf_alloc }, CONN_BUF_ALLOC);
}

#[test]
fn guest_to_host_forwarding_updates_credit_and_overrun_resets() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    let (mut client, hp) = g.host_connect(2);
    let chunk = vec![1u8; 40 * 1024];
    g.send(2, hp, op::RW, &chunk);
    g.send(2, hp, op::RW, &chunk);
    assert_eq!(read_n(&mut client, 80 * 1024).len(), 80 * 1024);
    let pkts = g.recv_until(|p| p.iter().any(|p| p.hdr.op == op::CREDIT_UPDATE));
    let upd = pkts.iter().find(|p| p.hdr.op == op::CREDIT_UPDATE).unwrap();
    assert!({ upd.hdr.fwd_cnt } >= 64 * 1024);

    // The host stops reading; the guest ignores our credit and keeps sending: once more than
    // our buffer is outstanding the connection is reset.
    let big = vec![2u8; 60 * 1024];
    let mut reset = false;
    for _ in 0..40 {
        g.send(2, hp, op::RW, &big);
        if g.recv().iter().any(|p| p.hdr.op == op::RST) {
            reset = true;
            break;
        }
    }
    assert!(reset, "overrun must reset the connection");
    assert_eq!(g.dev.muxer().connection_count(), 0);
}

#[test]
fn half_close_and_rst() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    let (mut client, hp) = g.host_connect(3);
    // Host half-closes: the guest sees SHUTDOWN(SEND) and can still send.
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let pkts = g.recv_until(|p| p.iter().any(|p| p.hdr.op == op::SHUTDOWN));
    let sd = pkts.iter().find(|p| p.hdr.op == op::SHUTDOWN).unwrap();
    assert_eq!({ sd.hdr.flags }, SHUTDOWN_SEND);
    g.send(3, hp, op::RW, b"still here");
    assert_eq!(read_n(&mut client, 10), b"still here");
    // Guest closes both ways: host answers RST and the stream ends.
    g.send_flags(3, hp, op::SHUTDOWN, SHUTDOWN_SEND | SHUTDOWN_RCV);
    assert!(g.recv().iter().any(|p| p.hdr.op == op::RST));
    expect_eof(&mut client);

    // Guest half-closes its send side: the host reads EOF but can still write.
    let (mut client, hp) = g.host_connect(4);
    g.send_flags(4, hp, op::SHUTDOWN, SHUTDOWN_SEND);
    expect_eof(&mut client);
    client.write_all(b"reply").unwrap();
    let pkts = g.recv_until(|p| data_of(p).len() >= 5);
    assert_eq!(data_of(&pkts), b"reply");

    // Guest RST: the host stream closes.
    let (mut client, hp) = g.host_connect(5);
    g.send(5, hp, op::RST, &[]);
    expect_eof(&mut client);
}

/// The guest writes more than the host socket takes at once and closes both ways: what is
/// still buffered reaches the host before its stream ends (then the RST goes out).
#[test]
fn data_buffered_when_the_guest_closes_still_reaches_the_host() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    let (mut client, hp) = g.host_connect(6);
    let chunk = vec![7u8; 60 * 1024];
    for _ in 0..4 {
        g.send(6, hp, op::RW, &chunk);
    }
    assert!(
        g.dev.muxer().connection_count() == 1,
        "the connection is still open"
    );
    g.send_flags(6, hp, op::SHUTDOWN, SHUTDOWN_SEND | SHUTDOWN_RCV);
    client.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut got, mut buf) = (0usize, vec![0u8; 64 * 1024]);
    loop {
        g.pump(20);
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("host read: {e}"),
        }
        assert!(Instant::now() < deadline, "stream never ended; got {got}");
    }
    assert_eq!(got, 4 * 60 * 1024, "bytes lost at close");
    g.recv_until(|p| p.iter().any(|p| p.hdr.op == op::RST));
    assert_eq!(g.dev.muxer().connection_count(), 0);
}

#[test]
fn many_concurrent_connections() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    let n = 40;
    let mut clients: Vec<UnixStream> = (0..n)
        .map(|i| {
            let mut c = UnixStream::connect(&g.path).unwrap();
            c.write_all(format!("CONNECT {}\n", 100 + i).as_bytes())
                .unwrap();
            c
        })
        .collect();
    let pkts = g.recv_until(|p| p.len() >= n);
    let mut host_ports = HashMap::new();
    for p in &pkts {
        assert_eq!({ p.hdr.op }, op::REQUEST);
        host_ports.insert(p.hdr.dst_port, p.hdr.src_port);
    }
    assert_eq!(host_ports.len(), n);
    for (gp, hp) in &host_ports {
        g.send(*gp, *hp, op::RESPONSE, &[]);
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let hp = host_ports[&(100 + i as u32)];
        assert_eq!(read_line(c), format!("OK {hp}\n"));
        c.write_all(format!("msg{i}").as_bytes()).unwrap();
    }
    let pkts = g.recv_until(|p| p.iter().filter(|p| p.hdr.op == op::RW).count() >= n);
    for p in pkts.iter().filter(|p| p.hdr.op == op::RW) {
        let i = p.hdr.dst_port - 100;
        assert_eq!(p.data, format!("msg{i}").into_bytes());
        // Echo back on the same connection.
        g.send(p.hdr.dst_port, p.hdr.src_port, op::RW, &p.data);
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let want = format!("msg{i}");
        assert_eq!(read_n(c, want.len()), want.into_bytes());
    }
    assert_eq!(g.dev.muxer().connection_count(), n);
}

#[test]
fn socket_file_is_removed_on_drop() {
    let mem = test_memory();
    let g = Guest::new(&mem);
    let path = g.path.clone();
    assert!(path.exists());
    drop(g);
    assert!(!path.exists());
}
