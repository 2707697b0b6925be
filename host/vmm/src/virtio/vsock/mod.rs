//! virtio-vsock with Firecracker's hybrid (Unix socket) host side.
//!
//! - Host → guest: a client connects to the device's Unix socket, writes `CONNECT <port>\n`,
//!   and once the guest accepts gets `OK <host port>\n`; the stream then carries the guest's
//!   AF_VSOCK connection. If the guest refuses (RST), the Unix stream is closed.
//! - Guest → host: a guest connection to CID 2 port P is connected to the Unix socket
//!   `<uds_path>_<P>`; if nothing listens there the guest gets an RST.
//! - Connection set-up is bounded: a host client that does not finish its `CONNECT` line, or
//!   whose guest port does not answer, is closed after [`deadline::CONNECT_TIMEOUT`] (2 s).
//! - Stream connections only, credit-based flow control both ways, SHUTDOWN half-close, RST.

pub mod connection;
pub mod deadline;
pub mod device;
pub mod handshake;
pub mod muxer;
pub mod packet;

pub use device::VsockDevice;

#[cfg(test)]
mod bench_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod timeout_tests;
