//! The host's side of the guest agent (`vmrun-agent`): [`AgentClient`], which speaks
//! `vmrun-agent-protocol` over any connection [`Connector`] opens (a VM's hybrid-vsock
//! socket, or a Unix socket where the agent runs on the host for tests), and
//! [`initramfs`], which packs the static agent and shim into the guest's initramfs.
//!
//! The daemon's VM backend uses both: build (or find in the cache) the initramfs, launch a
//! VM with it through `vmrun-vm`, connect an `AgentClient` to the VM's vsock socket, and
//! run containers through it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vmrun_agent_client::ClientError> {
//! use std::time::Duration;
//! use vmrun_agent_client::{AgentClient, Connector};
//! let connector = Connector::HybridVsock {
//!     path: "/run/vmrun/vm1.vsock".into(),
//!     port: vmrun_agent_protocol::AGENT_PORT,
//!     timeout: Duration::from_secs(10),
//! };
//! let agent = AgentClient::connect(connector, "vmrund").await?; // hello + host clock
//! agent.ping().await?;
//! # Ok(()) }
//! ```

mod client;
pub mod initramfs;

pub use client::{
    handshake, host_time, AgentClient, AgentVersion, ClientError, Connector, Welcome,
};
