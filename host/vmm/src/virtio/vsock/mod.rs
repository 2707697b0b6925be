//! virtio-vsock with Firecracker's hybrid (Unix socket) host side.
//!
//! - Host → guest: a client connects to the device's Unix socket, writes `CONNECT <port>\n`,
//!   and once the guest accepts gets `OK <host port>\n`; the stream then carries the guest's
//!   AF_VSOCK connection. If the guest refuses (RST), the Unix stream is closed.
//! - Guest → host: a guest connection to CID 2 port P is connected to the Unix socket
//!   `<uds_path>_<P>`; if nothing listens there the guest gets an RST.
//! - Stream connections only, credit-based flow control both ways, SHUTDOWN half-close, RST.

pub mod connection;
pub mod device;
pub mod handshake;
pub mod muxer;
pub mod packet;

pub use device::VsockDevice;

#[cfg(test)]
mod tests;
