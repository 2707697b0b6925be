//! One vsock stream connection between a guest port and a host Unix stream, with the
//! credit-based flow control of the virtio-vsock spec.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;

use super::packet::{op, VsockHeader, HOST_CID, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM};
use crate::virtio::iov::GuestIov;

/// Our receive buffer per connection (what the guest may have in flight towards us).
pub const CONN_BUF_ALLOC: u32 = 256 * 1024;
/// Send a credit update once this much has been forwarded since the last one.
const CREDIT_UPDATE_THRESHOLD: u32 = CONN_BUF_ALLOC / 4;

/// The guest overran its credit, or the host stream failed: the connection must be reset.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("vsock connection broken (credit overrun or host stream error)")]
pub struct ConnBroken;

/// Connection state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Host-initiated: REQUEST sent to the guest, waiting for RESPONSE.
    LocalInit,
    /// Data can flow.
    Established,
}

/// What reading the host stream gave.
#[derive(Debug, PartialEq, Eq)]
pub enum HostRead {
    /// This many bytes were written into the guest's buffer.
    Data(u32),
    /// Nothing now (would block, no credit, or nothing wanted).
    Nothing,
    /// The host closed its write side.
    Eof,
    /// The stream failed.
    Error,
}

/// A connection. `local_port` is the host-side port, `peer_port` the guest's.
pub struct Connection {
    /// Host Unix stream (non-blocking).
    pub stream: UnixStream,
    /// State.
    pub state: ConnState,
    /// Host-side port number.
    pub local_port: u32,
    /// Guest-side port number.
    pub peer_port: u32,
    guest_cid: u64,
    /// Guest data accepted but not yet written to the stream (only what the stream did not
    /// take at once; the rest goes from guest memory to the stream directly).
    tx_buf: Vec<u8>,
    /// Bytes from the guest written to the stream (our `fwd_cnt`).
    fwd_cnt: u32,
    last_fwd_cnt_sent: u32,
    /// Bytes sent to the guest (`rx_cnt`).
    rx_cnt: u32,
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// Bytes read from the host before the connection was established (after the handshake
    /// line), delivered to the guest first.
    prefix: Vec<u8>,
    /// The host sent EOF; we told the guest with SHUTDOWN(SEND).
    pub host_eof: bool,
    /// The guest will send no more (SHUTDOWN SEND received).
    pub guest_send_closed: bool,
    /// The guest will receive no more (SHUTDOWN RCV received).
    pub guest_rcv_closed: bool,
    /// A credit update should be sent.
    pub credit_update_wanted: bool,
}

impl Connection {
    /// A new connection over `stream` (made non-blocking).
    pub fn new(
        stream: UnixStream,
        state: ConnState,
        local_port: u32,
        peer_port: u32,
        guest_cid: u64,
    ) -> std::io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            stream,
            state,
            local_port,
            peer_port,
            guest_cid,
            tx_buf: Vec::new(),
            fwd_cnt: 0,
            last_fwd_cnt_sent: 0,
            rx_cnt: 0,
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            prefix: Vec::new(),
            host_eof: false,
            guest_send_closed: false,
            guest_rcv_closed: false,
            credit_update_wanted: false,
        })
    }

    /// Bytes to deliver to the guest before anything read from the stream.
    pub fn set_prefix(&mut self, prefix: Vec<u8>) {
        self.prefix = prefix;
    }

    /// A header from us (host) to the guest for this connection.
    pub fn header(&mut self, op: u16, len: u32, flags: u32) -> VsockHeader {
        self.last_fwd_cnt_sent = self.fwd_cnt;
        self.credit_update_wanted = false;
        VsockHeader {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: self.local_port,
            dst_port: self.peer_port,
            len,
            type_: TYPE_STREAM,
            op,
            flags,
            buf_alloc: CONN_BUF_ALLOC,
            fwd_cnt: self.fwd_cnt,
        }
    }

    /// A control packet (no payload).
    pub fn control(&mut self, op: u16, flags: u32) -> VsockHeader {
        self.header(op, 0, flags)
    }

    /// Records the guest's credit from any packet it sent.
    pub fn update_peer_credit(&mut self, hdr: &VsockHeader) {
        self.peer_buf_alloc = hdr.buf_alloc;
        self.peer_fwd_cnt = hdr.fwd_cnt;
    }

    /// How many bytes the guest can take now.
    pub fn peer_free(&self) -> u32 {
        let in_flight = self.rx_cnt.wrapping_sub(self.peer_fwd_cnt);
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    /// Whether the host stream should be polled for reading.
    pub fn wants_host_read(&self) -> bool {
        self.state == ConnState::Established
            && !self.host_eof
            && !self.guest_rcv_closed
            && self.peer_free() > 0
    }

    /// Whether buffered guest data waits for the stream to become writable.
    pub fn wants_host_write(&self) -> bool {
        !self.tx_buf.is_empty()
    }

    /// Reads into the guest's buffer `buf` (as much as it holds, bounded by the guest's
    /// credit), straight from the stream (`readv` into guest memory).
    pub fn read_for_guest(&mut self, buf: &mut GuestIov<'_>) -> HostRead {
        if !self.wants_host_read() && self.prefix.is_empty() {
            return HostRead::Nothing;
        }
        let want = buf.len().min(self.peer_free() as usize);
        if want == 0 {
            return HostRead::Nothing;
        }
        if !self.prefix.is_empty() {
            let n = want.min(self.prefix.len());
            if !buf.write_all(&self.prefix[..n]) {
                return HostRead::Error;
            }
            self.prefix.drain(..n);
            self.rx_cnt = self.rx_cnt.wrapping_add(n as u32);
            return HostRead::Data(n as u32);
        }
        buf.truncate(want);
        match buf.read_from(&self.stream) {
            Ok(0) => HostRead::Eof,
            Ok(n) => {
                self.rx_cnt = self.rx_cnt.wrapping_add(n as u32);
                HostRead::Data(n as u32)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                HostRead::Nothing
            }
            Err(_) => HostRead::Error,
        }
    }

    /// Accepts guest payload `data` (in guest memory): writes what the stream takes straight
    /// from guest memory (`writev`), copies the rest into the connection's buffer. Fails if
    /// the guest overran the credit we gave it or the stream is broken.
    pub fn write_from_guest(&mut self, data: &mut GuestIov<'_>) -> Result<(), ConnBroken> {
        if self.tx_buf.len() + data.len() > CONN_BUF_ALLOC as usize {
            return Err(ConnBroken);
        }
        // Earlier bytes still waiting go first; then the order is kept by buffering all.
        while self.tx_buf.is_empty() && !data.is_empty() {
            match data.write_to(&self.stream) {
                Ok(0) => return Err(ConnBroken),
                Ok(n) => {
                    data.advance(n);
                    self.fwd_cnt = self.fwd_cnt.wrapping_add(n as u32);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(ConnBroken),
            }
        }
        data.drain_into(&mut self.tx_buf);
        self.flush_to_host()
    }

    /// Writes buffered guest data to the stream.
    pub fn flush_to_host(&mut self) -> Result<(), ConnBroken> {
        while !self.tx_buf.is_empty() {
            match self.stream.write(&self.tx_buf) {
                Ok(0) => return Err(ConnBroken),
                Ok(n) => {
                    self.tx_buf.drain(..n);
                    self.fwd_cnt = self.fwd_cnt.wrapping_add(n as u32);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(ConnBroken),
            }
        }
        if self.fwd_cnt.wrapping_sub(self.last_fwd_cnt_sent) >= CREDIT_UPDATE_THRESHOLD {
            self.credit_update_wanted = true;
        }
        if self.tx_buf.is_empty() && self.guest_send_closed {
            // Guest is done sending and everything reached the host: half-close the stream.
            let _ = self.stream.shutdown(std::net::Shutdown::Write);
        }
        Ok(())
    }

    /// Applies SHUTDOWN flags from the guest. Returns true if both directions are now closed.
    pub fn guest_shutdown(&mut self, flags: u32) -> bool {
        if flags & SHUTDOWN_SEND != 0 {
            self.guest_send_closed = true;
            if self.tx_buf.is_empty() {
                let _ = self.stream.shutdown(std::net::Shutdown::Write);
            }
        }
        if flags & SHUTDOWN_RCV != 0 {
            self.guest_rcv_closed = true;
        }
        self.guest_send_closed && self.guest_rcv_closed
    }

    /// The header of a RW packet carrying `len` bytes.
    pub fn rw_header(&mut self, len: u32) -> VsockHeader {
        self.header(op::RW, len, 0)
    }
}
