//! A container's own network inside a VM: the agent makes a TAP device `eth0` in the
//! container's network namespace ([`GuestNetwork`] says how it is addressed), and its
//! Ethernet frames cross vsock to the host, where a user-mode network stack (`passt`)
//! turns them into ordinary sockets of the host: outbound TCP, UDP and ICMP need no
//! privilege and no routing on the host, DNS queries sent to [`GuestNetwork::dns`] go to
//! the host's resolver, and the gateway's address reaches the host's own loopback
//! (`host.docker.internal`).
//!
//! # Frames on the wire
//! On a [`crate::StreamTarget::Network`] connection and its return connection every
//! frame is a `u32` big-endian length and the Ethernet frame itself, exactly QEMU's
//! `-netdev stream` framing, which `passt` speaks on its socket: the host copies bytes
//! between the two without reading them.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The largest frame either side sends: `passt`'s MTU (65520) plus the Ethernet header.
pub const MAX_ETHERNET_FRAME: usize = 65520 + 14;

/// How the container's `eth0` is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNetwork {
    /// The container's address.
    pub address: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The default route's gateway; the host's network stack answers for it, and
    /// connections to it reach the host's loopback.
    pub gateway: Ipv4Addr,
    /// The DNS server the container is given (its queries go to the host's resolver).
    pub dns: Ipv4Addr,
    /// `eth0`'s MAC address.
    pub mac: [u8; 6],
    /// `eth0`'s MTU.
    pub mtu: u32,
}

impl GuestNetwork {
    /// The addresses every container in a VM gets (each has a network stack of its own
    /// on the host, so they need not differ), as QEMU's user networking numbers them.
    pub fn user_mode() -> Self {
        GuestNetwork {
            address: Ipv4Addr::new(10, 0, 2, 100),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 0, 2, 2),
            dns: Ipv4Addr::new(10, 0, 2, 3),
            mac: [0x02, 0x42, 0x0a, 0x00, 0x02, 0x64],
            mtu: 65520,
        }
    }
}

/// Files the agent writes for the container and binds over the image's (`/etc/hosts`,
/// `/etc/resolv.conf`, `/etc/hostname`), as the daemon writes them for native containers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcFiles {
    /// `/etc/hosts`.
    pub hosts: String,
    /// `/etc/hostname`; empty: the image's is left alone.
    #[serde(default)]
    pub hostname: String,
    /// `/etc/resolv.conf`.
    pub resolv_conf: String,
}

/// Frames in the wire format of this module, for tests and the agent: `frame` with its
/// length in front.
pub fn encode_frame(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + frame.len());
    out.extend_from_slice(&u32::try_from(frame.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(frame);
    out
}

/// A container's link to a user network in the guest ([`crate::Op::ConnectNetwork`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkLink {
    /// The network's bridge device in the guest's own namespace (at most 15 bytes).
    pub bridge: String,
    /// The name of the veth side on the bridge (at most 15 bytes, unique in the guest).
    pub host_veth: String,
    /// The name of the container's side (`eth1`, ...).
    pub interface: String,
    /// The container's address on the network (the daemon's IPAM chose it).
    pub address: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The container side's MAC address.
    pub mac: [u8; 6],
}

impl NetworkLink {
    /// Whether every device name is a usable Linux interface name (1 to 15 bytes of
    /// `[A-Za-z0-9_.-]`).
    pub fn valid_names(&self) -> bool {
        [&self.bridge, &self.host_veth, &self.interface]
            .iter()
            .all(|name| {
                (1..=15).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            })
    }
}
