//! The host side of the vsock device: the hybrid-vsock Unix listener, handshakes, the
//! connection table, and the queue of packets waiting for the guest. It owns an epoll fd of
//! its own that the device's event loop watches (Firecracker's `VsockMuxer` shape).
//!
//! Connection set-up is bounded in time: a host client that has not sent its whole
//! `CONNECT <port>\n` line within the connect timeout is closed, and so is one whose guest
//! port neither accepts nor refuses the REQUEST in that time (the guest then gets an RST).
//! A one-shot timerfd in the same epoll set wakes the loop at the earliest deadline.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use super::connection::{ConnState, Connection, HostRead};
use super::deadline::{DeadlineTimer, CONNECT_TIMEOUT};
use super::handshake::{self, Handshake};
use super::packet::{op, VsockHeader, HOST_CID, SHUTDOWN_SEND, TYPE_STREAM};
use crate::virtio::iov::GuestIov;

/// (host-side port, guest-side port).
type ConnKey = (u32, u32);
/// First host-side port handed to host-initiated connections (as Firecracker does).
const FIRST_LOCAL_PORT: u32 = 1 << 30;
/// Most connections at once (handshakes included).
pub const MAX_CONNECTIONS: usize = 1024;

struct PendingHandshake {
    stream: UnixStream,
    buf: Vec<u8>,
    /// The whole line must have arrived by then.
    deadline: Instant,
}

/// The multiplexer.
pub struct Muxer {
    guest_cid: u64,
    uds_path: PathBuf,
    listener: UnixListener,
    epoll: Epoll,
    conns: HashMap<ConnKey, Connection>,
    fd_keys: HashMap<RawFd, ConnKey>,
    /// fds currently registered with `epoll` and their interest.
    registered: HashMap<RawFd, EventSet>,
    handshakes: HashMap<RawFd, PendingHandshake>,
    /// Host-initiated connections waiting for the guest's RESPONSE, and until when.
    request_deadlines: HashMap<ConnKey, Instant>,
    connect_timeout: Duration,
    timer: DeadlineTimer,
    /// Control packets (no payload) for the guest.
    control: VecDeque<VsockHeader>,
    rx_ready: VecDeque<ConnKey>,
    next_local_port: u32,
}

impl Muxer {
    /// Binds `uds_path` (a stale socket file is replaced) for guest CID `guest_cid`.
    pub fn new(guest_cid: u64, uds_path: &Path) -> std::io::Result<Self> {
        if let Ok(meta) = std::fs::symlink_metadata(uds_path) {
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_socket() && UnixStream::connect(uds_path).is_err() {
                std::fs::remove_file(uds_path)?;
            }
        }
        let listener = UnixListener::bind(uds_path)?;
        let cleanup = |e| {
            let _ = std::fs::remove_file(uds_path);
            e
        };
        listener.set_nonblocking(true).map_err(cleanup)?;
        let epoll = Epoll::new().map_err(cleanup)?;
        let timer = DeadlineTimer::new().map_err(cleanup)?;
        for fd in [listener.as_raw_fd(), timer.fd()] {
            epoll
                .ctl(
                    ControlOperation::Add,
                    fd,
                    EpollEvent::new(EventSet::IN, fd as u64),
                )
                .map_err(cleanup)?;
        }
        Ok(Self {
            guest_cid,
            uds_path: uds_path.to_path_buf(),
            listener,
            epoll,
            conns: HashMap::new(),
            fd_keys: HashMap::new(),
            registered: HashMap::new(),
            handshakes: HashMap::new(),
            request_deadlines: HashMap::new(),
            connect_timeout: CONNECT_TIMEOUT,
            timer,
            control: VecDeque::new(),
            rx_ready: VecDeque::new(),
            next_local_port: FIRST_LOCAL_PORT,
        })
    }

    /// The epoll fd to watch for host-side events.
    pub fn epoll_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Open connections (established or being set up with the guest).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Host clients that have not finished their `CONNECT <port>\n` line yet.
    pub fn handshake_count(&self) -> usize {
        self.handshakes.len()
    }

    /// Sets how long connection set-up may take (default [`CONNECT_TIMEOUT`]); applies to
    /// connections that start afterwards.
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = timeout;
    }

    /// Drops every connection (device reset).
    pub fn reset(&mut self) {
        let fds: Vec<RawFd> = self.fd_keys.keys().copied().collect();
        for fd in fds {
            self.set_interest(fd, EventSet::empty());
        }
        self.conns.clear();
        self.fd_keys.clear();
        self.request_deadlines.clear();
        self.control.clear();
        self.rx_ready.clear();
    }

    fn set_interest(&mut self, fd: RawFd, events: EventSet) {
        let current = self.registered.get(&fd).copied();
        let result = match (current, events.is_empty()) {
            (None, true) => return,
            (Some(cur), false) if cur == events => return,
            (Some(_), true) => {
                self.registered.remove(&fd);
                self.epoll
                    .ctl(ControlOperation::Delete, fd, EpollEvent::default())
            }
            (None, false) => {
                self.registered.insert(fd, events);
                self.epoll.ctl(
                    ControlOperation::Add,
                    fd,
                    EpollEvent::new(events, fd as u64),
                )
            }
            (Some(_), false) => {
                self.registered.insert(fd, events);
                self.epoll.ctl(
                    ControlOperation::Modify,
                    fd,
                    EpollEvent::new(events, fd as u64),
                )
            }
        };
        if let Err(e) = result {
            tracing::warn!("vsock: epoll_ctl on fd {fd}: {e}");
        }
    }

    fn update_interest(&mut self, key: ConnKey) {
        let Some(conn) = self.conns.get(&key) else {
            return;
        };
        let mut events = EventSet::empty();
        if conn.wants_host_read() && !self.rx_ready.contains(&key) {
            events |= EventSet::IN;
        }
        if conn.wants_host_write() {
            events |= EventSet::OUT;
        }
        let fd = conn.stream.as_raw_fd();
        self.set_interest(fd, events);
    }

    fn remove(&mut self, key: ConnKey) {
        if let Some(conn) = self.conns.remove(&key) {
            let fd = conn.stream.as_raw_fd();
            self.set_interest(fd, EventSet::empty());
            self.fd_keys.remove(&fd);
        }
        self.request_deadlines.remove(&key);
        self.rx_ready.retain(|k| *k != key);
    }

    /// Queues an RST for `key` and forgets the connection; `why` goes to the debug log.
    fn reset_conn(&mut self, key: ConnKey, why: &str) {
        if let Some(conn) = self.conns.get_mut(&key) {
            tracing::debug!(local = key.0, guest = key.1, "vsock: reset: {why}");
            let pkt = conn.control(op::RST, 0);
            self.control.push_back(pkt);
        }
        self.remove(key);
    }

    /// An RST answering a guest packet that has no connection.
    fn rst_reply(&mut self, hdr: &VsockHeader) {
        self.control.push_back(VsockHeader {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: hdr.dst_port,
            dst_port: hdr.src_port,
            type_: TYPE_STREAM,
            op: op::RST,
            ..Default::default()
        });
    }

    fn insert(&mut self, conn: Connection) -> ConnKey {
        let key = (conn.local_port, conn.peer_port);
        self.fd_keys.insert(conn.stream.as_raw_fd(), key);
        self.conns.insert(key, conn);
        key
    }

    fn alloc_local_port(&mut self) -> u32 {
        loop {
            let port = self.next_local_port;
            self.next_local_port = self
                .next_local_port
                .checked_add(1)
                .unwrap_or(FIRST_LOCAL_PORT);
            if !self.conns.keys().any(|(local, _)| *local == port) {
                return port;
            }
        }
    }

    /// Handles whatever is ready on the host side (non-blocking).
    pub fn process_host_events(&mut self) {
        let mut events = vec![EpollEvent::default(); 64];
        loop {
            let n = match self.epoll.wait(0, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("vsock: epoll_wait: {e}");
                    return;
                }
            };
            if n == 0 {
                return;
            }
            for ev in &events[..n] {
                let fd = ev.data() as RawFd;
                let set = ev.event_set();
                if fd == self.listener.as_raw_fd() {
                    self.accept_all();
                } else if fd == self.timer.fd() {
                    self.timer.acknowledge();
                    self.expire_connects(Instant::now());
                } else if self.handshakes.contains_key(&fd) {
                    self.advance_handshake(fd);
                } else if let Some(&key) = self.fd_keys.get(&fd) {
                    self.conn_event(key, set);
                }
            }
            if n < events.len() {
                return;
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.conns.len() + self.handshakes.len() >= MAX_CONNECTIONS
                        || stream.set_nonblocking(true).is_err()
                    {
                        tracing::warn!("vsock: refusing host connection (limit reached)");
                        continue;
                    }
                    let fd = stream.as_raw_fd();
                    let deadline = Instant::now() + self.connect_timeout;
                    self.handshakes.insert(
                        fd,
                        PendingHandshake {
                            stream,
                            buf: Vec::new(),
                            deadline,
                        },
                    );
                    self.timer.arm_by(deadline);
                    self.set_interest(fd, EventSet::IN);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!("vsock: accept: {e}");
                    return;
                }
            }
        }
    }

    fn advance_handshake(&mut self, fd: RawFd) {
        let Some(pending) = self.handshakes.get_mut(&fd) else {
            return;
        };
        let mut chunk = [0u8; handshake::MAX_LINE];
        let outcome = match pending.stream.read(&mut chunk) {
            Ok(0) => Handshake::Invalid("closed before the handshake"),
            Ok(n) => {
                pending.buf.extend_from_slice(&chunk[..n]);
                handshake::parse(&pending.buf)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return
            }
            Err(_) => Handshake::Invalid("read error during the handshake"),
        };
        match outcome {
            Handshake::Incomplete => {}
            Handshake::Invalid(why) => {
                tracing::debug!("vsock: dropping host connection: {why}");
                self.set_interest(fd, EventSet::empty());
                self.handshakes.remove(&fd);
            }
            Handshake::Connect { port, consumed } => {
                self.set_interest(fd, EventSet::empty());
                let Some(pending) = self.handshakes.remove(&fd) else {
                    return;
                };
                let local = self.alloc_local_port();
                match Connection::new(
                    pending.stream,
                    ConnState::LocalInit,
                    local,
                    port,
                    self.guest_cid,
                ) {
                    Ok(mut conn) => {
                        conn.set_prefix(pending.buf[consumed..].to_vec());
                        self.control.push_back(conn.control(op::REQUEST, 0));
                        let key = self.insert(conn);
                        let deadline = Instant::now() + self.connect_timeout;
                        self.request_deadlines.insert(key, deadline);
                        self.timer.arm_by(deadline);
                    }
                    Err(e) => tracing::warn!("vsock: {e}"),
                }
            }
        }
    }

    fn conn_event(&mut self, key: ConnKey, set: EventSet) {
        if set.contains(EventSet::OUT) {
            let ok = match self.conns.get_mut(&key) {
                Some(conn) => conn.flush_to_host().is_ok(),
                None => return,
            };
            if !ok {
                self.reset_conn(key, "writing to the host stream failed");
                return;
            }
            let drained_after_close = self.conns.get(&key).is_some_and(|c| {
                c.guest_send_closed && c.guest_rcv_closed && !c.wants_host_write()
            });
            if drained_after_close {
                self.reset_conn(key, "both sides closed and everything was delivered");
                return;
            }
            self.queue_credit_update_if_wanted(key);
        }
        if set.intersects(EventSet::IN | EventSet::HANG_UP | EventSet::ERROR)
            && !self.rx_ready.contains(&key)
        {
            self.rx_ready.push_back(key);
        }
        self.update_interest(key);
    }

    fn queue_credit_update_if_wanted(&mut self, key: ConnKey) {
        if let Some(conn) = self.conns.get_mut(&key) {
            if conn.credit_update_wanted {
                let pkt = conn.control(op::CREDIT_UPDATE, 0);
                self.control.push_back(pkt);
            }
        }
    }

    /// Handles a packet the guest sent (TX queue): its header and, for RW, its payload still
    /// in guest memory (`hdr.len` bytes).
    pub fn handle_guest_packet(&mut self, hdr: VsockHeader, payload: &mut GuestIov<'_>) {
        if hdr.dst_cid != HOST_CID || hdr.src_cid != self.guest_cid {
            tracing::debug!("vsock: dropping packet with bad CIDs");
            return;
        }
        if hdr.type_ != TYPE_STREAM {
            if hdr.op != op::RST {
                self.rst_reply(&hdr);
            }
            return;
        }
        let key = (hdr.dst_port, hdr.src_port);
        if hdr.op == op::REQUEST {
            self.guest_connect(&hdr);
            return;
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            if hdr.op != op::RST {
                self.rst_reply(&hdr);
            }
            return;
        };
        conn.update_peer_credit(&hdr);
        match hdr.op {
            op::RESPONSE if conn.state == ConnState::LocalInit => {
                conn.state = ConnState::Established;
                self.request_deadlines.remove(&key);
                let line = handshake::ok_line(conn.local_port);
                if (&conn.stream).write_all(line.as_bytes()).is_err() {
                    self.reset_conn(key, "writing the OK line failed");
                    return;
                }
                if !self.rx_ready.contains(&key) {
                    self.rx_ready.push_back(key);
                }
            }
            op::RST => {
                tracing::debug!(local = key.0, guest = key.1, "vsock: the guest reset");
                self.remove(key);
                return;
            }
            _ if conn.state != ConnState::Established => {
                self.reset_conn(key, "packet before the connection was established");
                return;
            }
            op::SHUTDOWN => {
                if conn.guest_shutdown(hdr.flags) {
                    if conn.wants_host_write() {
                        // The guest closed with data still buffered for the host: deliver it
                        // first (the RST goes once it is written; see `conn_event`).
                        self.update_interest(key);
                    } else {
                        self.reset_conn(key, "the guest closed both directions");
                    }
                    return;
                }
            }
            op::RW => {
                if conn.guest_send_closed || conn.write_from_guest(payload).is_err() {
                    self.reset_conn(key, "guest data after its SHUTDOWN(SEND) or beyond its credit, or the host stream broke");
                    return;
                }
                self.queue_credit_update_if_wanted(key);
            }
            op::CREDIT_REQUEST => {
                let pkt = conn.control(op::CREDIT_UPDATE, 0);
                self.control.push_back(pkt);
            }
            op::CREDIT_UPDATE => {
                if conn.wants_host_read() && !self.rx_ready.contains(&key) {
                    self.rx_ready.push_back(key);
                }
            }
            _ => {
                self.reset_conn(key, "unknown operation");
                return;
            }
        }
        self.update_interest(key);
    }

    /// Closes host clients whose handshake did not finish by `now` and resets connections
    /// whose guest did not answer the REQUEST by `now`, then re-arms the timer for the
    /// earliest remaining deadline.
    fn expire_connects(&mut self, now: Instant) {
        let late_handshakes: Vec<RawFd> = self
            .handshakes
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(fd, _)| *fd)
            .collect();
        for fd in late_handshakes {
            tracing::debug!("vsock: host client sent no CONNECT line in time; closing it");
            self.set_interest(fd, EventSet::empty());
            self.handshakes.remove(&fd);
        }
        let late_requests: Vec<ConnKey> = self
            .request_deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(key, _)| *key)
            .collect();
        for key in late_requests {
            tracing::debug!("vsock: guest port {} did not answer in time", key.1);
            self.reset_conn(key, "the guest did not answer the REQUEST in time");
        }
        let next = self
            .handshakes
            .values()
            .map(|p| p.deadline)
            .chain(self.request_deadlines.values().copied())
            .min();
        if let Some(deadline) = next {
            self.timer.arm_by(deadline);
        }
    }

    /// Guest REQUEST to host port P: connect to `<uds_path>_<P>`.
    fn guest_connect(&mut self, hdr: &VsockHeader) {
        let key = (hdr.dst_port, hdr.src_port);
        if self.conns.contains_key(&key) || self.conns.len() >= MAX_CONNECTIONS {
            self.rst_reply(hdr);
            return;
        }
        let mut path = self.uds_path.clone().into_os_string();
        path.push(format!("_{}", hdr.dst_port));
        let conn = UnixStream::connect(&path).and_then(|s| {
            Connection::new(
                s,
                ConnState::Established,
                hdr.dst_port,
                hdr.src_port,
                self.guest_cid,
            )
        });
        match conn {
            Ok(mut conn) => {
                conn.update_peer_credit(hdr);
                self.control.push_back(conn.control(op::RESPONSE, 0));
                let key = self.insert(conn);
                self.update_interest(key);
            }
            Err(e) => {
                tracing::debug!("vsock: guest connect to {:?}: {e}", path);
                self.rst_reply(hdr);
            }
        }
    }

    /// Whether a packet is waiting for the guest (without reading streams).
    pub fn has_control_pending(&self) -> bool {
        !self.control.is_empty()
    }

    /// The header of the next packet for the guest; a RW packet's payload (at most
    /// `buf.len()` bytes) is already written into `buf`, the guest's buffer after the header.
    pub fn next_rx_packet(&mut self, buf: &mut GuestIov<'_>) -> Option<VsockHeader> {
        if let Some(hdr) = self.control.pop_front() {
            return Some(hdr);
        }
        while let Some(key) = self.rx_ready.pop_front() {
            let Some(conn) = self.conns.get_mut(&key) else {
                continue;
            };
            match conn.read_for_guest(buf) {
                HostRead::Data(len) => {
                    let hdr = conn.rw_header(len);
                    self.rx_ready.push_back(key);
                    return Some(hdr);
                }
                HostRead::Nothing => self.update_interest(key),
                HostRead::Eof => {
                    conn.host_eof = true;
                    let pkt = conn.control(op::SHUTDOWN, SHUTDOWN_SEND);
                    self.update_interest(key);
                    return Some(pkt);
                }
                HostRead::Error => {
                    self.reset_conn(key, "reading the host stream failed");
                    return self.control.pop_front();
                }
            }
        }
        None
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.uds_path);
    }
}
