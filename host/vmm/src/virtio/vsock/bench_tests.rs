//! Throughput through the vsock device with mock queues: 256 MiB guest → host (TX) and
//! host → guest (RX) over one connection, 64 KiB payloads, a host thread on the Unix stream.
//! Ignored by default; run it in release:
//! `cargo test -p vmrun-vmm --release vsock_throughput -- --ignored --nocapture`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::packet::{op, VsockHeader, HDR_SIZE, MAX_PKT_DATA, TYPE_STREAM};
use super::VsockDevice;
use crate::virtio::testing::DriverQueue;
use crate::virtio::{IrqTrigger, VirtioDevice};

const CID: u64 = 3;
const GUEST_PORT: u32 = 5000;
const TOTAL: u64 = 256 << 20;
const RX_BUFS: u64 = 64;
const RX_BUF: u64 = 0x10_0000;
const RX_BUF_SIZE: u32 = HDR_SIZE as u32 + MAX_PKT_DATA;
const TX_HDRS: u64 = 0x80_0000;
const TX_PAYLOAD: u64 = 0x90_0000;
/// What the guest advertises (`buf_alloc`).
const GUEST_BUF: u32 = 4 << 20;

struct Bench<'a> {
    mem: &'a GuestMemoryMmap,
    rxq: DriverQueue<'a>,
    txq: DriverQueue<'a>,
    rx_seen: u16,
    rx_bufs: HashMap<u32, u64>,
    tx_slot: u64,
    dev: VsockDevice,
    host_port: u32,
    /// The host's last advertised `fwd_cnt` (for our TX credit).
    host_fwd_cnt: u32,
    /// Payload bytes the guest consumed (its `fwd_cnt`).
    fwd_cnt: u32,
    /// Watches the device's backend fd.
    epoll: Epoll,
}

impl<'a> Bench<'a> {
    fn new(mem: &'a GuestMemoryMmap, path: &std::path::Path) -> Self {
        let mut dev = VsockDevice::new(CID, path).unwrap();
        let mut rxq = DriverQueue::new(mem, 0, 256);
        let txq = DriverQueue::new(mem, 0x1_0000, 256);
        let evq = DriverQueue::new(mem, 0x2_0000, 256);
        let mut rx_bufs = HashMap::new();
        for i in 0..RX_BUFS {
            let addr = RX_BUF + i * u64::from(RX_BUF_SIZE);
            rx_bufs.insert(u32::from(rxq.add(&[(addr, RX_BUF_SIZE, true)])), addr);
        }
        let irq = IrqTrigger::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let queues = vec![rxq.device_queue(), txq.device_queue(), evq.device_queue()];
        dev.activate(mem.clone(), queues, irq).unwrap();
        let epoll = Epoll::new().unwrap();
        let backend = dev.backend_fd().unwrap();
        epoll
            .ctl(
                ControlOperation::Add,
                backend,
                EpollEvent::new(EventSet::IN, 0),
            )
            .unwrap();
        Self {
            mem,
            rxq,
            txq,
            rx_seen: 0,
            rx_bufs,
            tx_slot: 0,
            dev,
            host_port: 0,
            host_fwd_cnt: 0,
            fwd_cnt: 0,
            epoll,
        }
    }

    /// Sends a header; an RW carries `len` bytes of the payload area.
    fn send(&mut self, op: u16, len: u32) {
        let hdr = VsockHeader {
            src_cid: CID,
            dst_cid: 2,
            src_port: GUEST_PORT,
            dst_port: self.host_port,
            len,
            type_: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc: GUEST_BUF,
            fwd_cnt: self.fwd_cnt,
        };
        let at = TX_HDRS + (self.tx_slot % 128) * 64;
        self.tx_slot += 1;
        self.mem
            .write_slice(&hdr.to_bytes(), GuestAddress(at))
            .unwrap();
        if len == 0 {
            self.txq.add(&[(at, HDR_SIZE as u32, false)]);
        } else {
            self.txq
                .add(&[(at, HDR_SIZE as u32, false), (TX_PAYLOAD, len, false)]);
        }
        self.dev.process_queue(1);
    }

    /// Handles host-side events (waiting up to `ms`), then takes the used RX buffers back:
    /// returns (RW payload bytes, other headers).
    fn poll(&mut self, ms: i32) -> (u64, Vec<VsockHeader>) {
        // epoll, as the device thread waits (and its seccomp filter allows).
        let mut events = [EpollEvent::default()];
        if matches!(self.epoll.wait(ms, &mut events), Ok(n) if n > 0) {
            self.dev.process_backend();
        }
        let mut data = 0;
        let mut other = Vec::new();
        while self.rx_seen != self.rxq.used_idx() {
            let (head, _) = self.rxq.used(self.rx_seen);
            self.rx_seen = self.rx_seen.wrapping_add(1);
            let addr = self.rx_bufs.remove(&head).unwrap();
            let mut bytes = [0u8; HDR_SIZE];
            self.mem.read_slice(&mut bytes, GuestAddress(addr)).unwrap();
            let hdr = VsockHeader::parse(&bytes).unwrap();
            self.host_fwd_cnt = hdr.fwd_cnt;
            if hdr.op == op::RW {
                data += u64::from(hdr.len);
            } else {
                other.push(hdr);
            }
            let new_head = self.rxq.add(&[(addr, RX_BUF_SIZE, true)]);
            self.rx_bufs.insert(u32::from(new_head), addr);
        }
        self.dev.process_queue(0);
        (data, other)
    }

    fn connect(&mut self, path: &std::path::Path) -> UnixStream {
        let mut client = UnixStream::connect(path).unwrap();
        writeln!(client, "CONNECT {GUEST_PORT}").unwrap();
        let req = loop {
            if let Some(h) = self.poll(50).1.first() {
                break *h;
            }
        };
        assert_eq!({ req.op }, op::REQUEST);
        self.host_port = req.src_port;
        self.send(op::RESPONSE, 0);
        let mut line = [0u8; 64];
        let n = client.read(&mut line).unwrap();
        assert!(line[..n].starts_with(b"OK "));
        client
    }
}

fn mib_per_s(bytes: u64, started: Instant) -> f64 {
    bytes as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

/// Pushes `total` bytes guest → host, then host → guest, through `b`'s connection
/// `client`; with `filter`, the device side runs under the device thread's seccomp filter
/// (the host side stays in unfiltered threads). Returns (TX, RX) MiB/s.
fn push_both_ways(
    b: &mut Bench<'_>,
    mem: &GuestMemoryMmap,
    client: &UnixStream,
    total: u64,
    filter: Option<crate::seccomp::ThreadKind>,
) -> (f64, f64) {
    mem.write_slice(&vec![0x5a; MAX_PKT_DATA as usize], GuestAddress(TX_PAYLOAD))
        .unwrap();
    let mut reader = client.try_clone().unwrap();
    let sink = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        while got < total {
            let n = reader.read(&mut buf).unwrap();
            assert!(n > 0 && buf[..n].iter().all(|&x| x == 0x5a));
            got += n as u64;
        }
    });
    let mut writer = client.try_clone().unwrap();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let source = std::thread::spawn(move || {
        wait.recv().unwrap();
        let buf = vec![0xa5u8; 1 << 20];
        for _ in 0..total / (1 << 20) {
            writer.write_all(&buf).unwrap();
        }
    });
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if let Some(kind) = filter {
                    crate::seccomp::install(kind).unwrap();
                }
                // Guest → host: the guest sends while the host's credit allows.
                let started = Instant::now();
                let mut sent = 0u64;
                while sent < total {
                    let in_flight = (sent as u32).wrapping_sub(b.host_fwd_cnt);
                    if in_flight + MAX_PKT_DATA <= super::connection::CONN_BUF_ALLOC {
                        b.send(op::RW, MAX_PKT_DATA);
                        sent += u64::from(MAX_PKT_DATA);
                    } else {
                        b.poll(10);
                    }
                }
                // What the stream did not take at once waits in the device until it is
                // writable.
                while !sink.is_finished() {
                    b.poll(10);
                }
                let tx = mib_per_s(total, started);
                // Host → guest: the guest consumes at once and returns credit every MiB.
                go.send(()).unwrap();
                let started = Instant::now();
                let mut received = 0u64;
                let mut credited = 0u64;
                while received < total {
                    received += b.poll(10).0;
                    b.fwd_cnt = received as u32;
                    if received - credited >= 1 << 20 {
                        credited = received;
                        b.send(op::CREDIT_UPDATE, 0);
                    }
                }
                (tx, mib_per_s(total, started))
            })
            .join()
            .unwrap()
    });
    source.join().unwrap();
    let mut sample = [0u8; 64];
    mem.read_slice(&mut sample, GuestAddress(RX_BUF + HDR_SIZE as u64))
        .unwrap();
    assert!(sample.iter().all(|&x| x == 0xa5));
    result
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn vsock_throughput() {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sock");
    let mut b = Bench::new(&mem, &path);
    let client = b.connect(&path);
    let (tx, rx) = push_both_ways(&mut b, &mem, &client, TOTAL, None);
    println!("vsock throughput (256 MiB, 64 KiB packets): TX guest->host {tx:.0} MiB/s, RX host->guest {rx:.0} MiB/s");
}

/// The zero-copy data paths (writev from / readv into guest memory, credit updates, epoll)
/// run under the device thread's seccomp filter without being killed; then the guest
/// connects out to `<path>_<port>` (socket + connect) and the device thread's filter
/// still holds (a SIGSYS would end this test process).
#[test]
fn vsock_data_paths_run_under_the_device_filter() {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sock");
    let mut b = Bench::new(&mem, &path);
    let client = b.connect(&path);
    let kind = Some(crate::seccomp::ThreadKind::Devices);
    push_both_ways(&mut b, &mem, &client, 4 << 20, kind);
    let listener =
        std::os::unix::net::UnixListener::bind(format!("{}_77", path.display())).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            crate::seccomp::install(crate::seccomp::ThreadKind::Devices).unwrap();
            b.host_port = 77;
            b.send(op::REQUEST, 0);
            let answer = loop {
                if let Some(h) = b.poll(50).1.first() {
                    break *h;
                }
            };
            assert_eq!({ answer.op }, op::RESPONSE);
        });
    });
    assert!(listener.accept().is_ok());
}
