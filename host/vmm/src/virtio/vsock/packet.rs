//! The virtio-vsock packet header (`struct virtio_vsock_hdr`, 44 bytes, little endian) and
//! the operations and flags it carries.

/// Header size in bytes.
pub const HDR_SIZE: usize = 44;
/// The host's CID.
pub const HOST_CID: u64 = 2;
/// `VIRTIO_VSOCK_TYPE_STREAM`.
pub const TYPE_STREAM: u16 = 1;
/// Largest payload we accept or send in one packet.
pub const MAX_PKT_DATA: u32 = 64 * 1024;

/// Operations.
pub mod op {
    #![allow(missing_docs)]
    pub const REQUEST: u16 = 1;
    pub const RESPONSE: u16 = 2;
    pub const RST: u16 = 3;
    pub const SHUTDOWN: u16 = 4;
    pub const RW: u16 = 5;
    pub const CREDIT_UPDATE: u16 = 6;
    pub const CREDIT_REQUEST: u16 = 7;
}

/// SHUTDOWN flag: the sender will receive no more data.
pub const SHUTDOWN_RCV: u32 = 1;
/// SHUTDOWN flag: the sender will send no more data.
pub const SHUTDOWN_SEND: u32 = 2;

/// `struct virtio_vsock_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VsockHeader {
    /// Source CID.
    pub src_cid: u64,
    /// Destination CID.
    pub dst_cid: u64,
    /// Source port.
    pub src_port: u32,
    /// Destination port.
    pub dst_port: u32,
    /// Payload length.
    pub len: u32,
    /// Socket type (`TYPE_STREAM`).
    pub type_: u16,
    /// Operation (`op::*`).
    pub op: u16,
    /// Operation flags (SHUTDOWN).
    pub flags: u32,
    /// Sender's receive buffer size.
    pub buf_alloc: u32,
    /// Bytes the sender has consumed from its receive buffer.
    pub fwd_cnt: u32,
}

/// Why a header from the guest is rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than 44 bytes.
    Short,
    /// Payload longer than [`MAX_PKT_DATA`].
    TooLong(u32),
    /// Unknown operation.
    BadOp(u16),
}

impl VsockHeader {
    /// Parses and sanity-checks a header from raw bytes (little endian).
    pub fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        let bytes: &[u8; HDR_SIZE] = bytes
            .get(..HDR_SIZE)
            .and_then(|b| b.try_into().ok())
            .ok_or(HeaderError::Short)?;
        let hdr = Self::from_le_bytes(bytes);
        if hdr.len > MAX_PKT_DATA {
            return Err(HeaderError::TooLong(hdr.len));
        }
        if !(op::REQUEST..=op::CREDIT_REQUEST).contains(&hdr.op) {
            return Err(HeaderError::BadOp(hdr.op));
        }
        Ok(hdr)
    }

    fn from_le_bytes(b: &[u8; HDR_SIZE]) -> Self {
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
        let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap_or_default());
        Self {
            src_cid: u64_at(0),
            dst_cid: u64_at(8),
            src_port: u32_at(16),
            dst_port: u32_at(20),
            len: u32_at(24),
            type_: u16_at(28),
            op: u16_at(30),
            flags: u32_at(32),
            buf_alloc: u32_at(36),
            fwd_cnt: u32_at(40),
        }
    }

    /// Serializes to little-endian bytes.
    pub fn to_bytes(&self) -> [u8; HDR_SIZE] {
        let mut b = [0u8; HDR_SIZE];
        let h = *self;
        b[0..8].copy_from_slice(&{ h.src_cid }.to_le_bytes());
        b[8..16].copy_from_slice(&{ h.dst_cid }.to_le_bytes());
        b[16..20].copy_from_slice(&{ h.src_port }.to_le_bytes());
        b[20..24].copy_from_slice(&{ h.dst_port }.to_le_bytes());
        b[24..28].copy_from_slice(&{ h.len }.to_le_bytes());
        b[28..30].copy_from_slice(&{ h.type_ }.to_le_bytes());
        b[30..32].copy_from_slice(&{ h.op }.to_le_bytes());
        b[32..36].copy_from_slice(&{ h.flags }.to_le_bytes());
        b[36..40].copy_from_slice(&{ h.buf_alloc }.to_le_bytes());
        b[40..44].copy_from_slice(&{ h.fwd_cnt }.to_le_bytes());
        b
    }
}

/// A packet: header plus payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The header (`len` matches `data.len()`).
    pub hdr: VsockHeader,
    /// Payload (RW only).
    pub data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_is_44_bytes() {
        let h = VsockHeader {
            src_cid: 3,
            dst_cid: 2,
            src_port: 1234,
            dst_port: 5678,
            len: 10,
            type_: TYPE_STREAM,
            op: op::RW,
            flags: 0,
            buf_alloc: 65536,
            fwd_cnt: 99,
        };
        let bytes = h.to_bytes();
        assert_eq!(bytes.len(), HDR_SIZE);
        assert_eq!(&bytes[16..20], &1234u32.to_le_bytes());
        assert_eq!(&bytes[30..32], &op::RW.to_le_bytes());
        assert_eq!(VsockHeader::parse(&bytes), Ok(h));
    }

    #[test]
    fn bad_headers_are_rejected() {
        assert_eq!(VsockHeader::parse(&[0u8; 10]), Err(HeaderError::Short));
        let mut h = VsockHeader {
            op: op::RW,
            len: MAX_PKT_DATA + 1,
            ..Default::default()
        };
        assert_eq!(
            VsockHeader::parse(&h.to_bytes()),
            Err(HeaderError::TooLong(MAX_PKT_DATA + 1))
        );
        h.len = 0;
        h.op = 42;
        assert_eq!(
            VsockHeader::parse(&h.to_bytes()),
            Err(HeaderError::BadOp(42))
        );
    }
}
