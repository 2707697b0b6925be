//! Public value types: what callers pass in and get back.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Name of the predefined default bridge network.
pub const DEFAULT_NETWORK: &str = "bridge";
/// Name of the predefined network that shares the host's namespace.
pub const HOST_NETWORK: &str = "host";
/// Name of the predefined network with only a loopback device.
pub const NONE_NETWORK: &str = "none";
/// Default bridge device of the default network.
pub const DEFAULT_BRIDGE_DEVICE: &str = "vmrun0";

/// The kind of a network (Docker's "Driver").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// A Linux bridge with veth endpoints.
    Bridge,
    /// The host's own network namespace.
    Host,
    /// A namespace with only `lo`.
    Null,
}

impl Driver {
    /// Docker's name for the driver.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Host => "host",
            Driver::Null => "null",
        }
    }
}

/// Options of a user-defined network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOptions {
    /// Subnet to use; picked from the candidate pools when `None`.
    pub subnet: Option<Ipv4Net>,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// No traffic leaves the bridge (no NAT, no forwarding, no default route).
    pub internal: bool,
}

/// Where and how to connect one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    /// The container's id (also names its namespace file).
    pub container_id: String,
    /// The container's name (a leading `/` is ignored); resolvable by peers.
    pub container_name: String,
    /// The container's hostname.
    pub hostname: String,
    /// `"bridge"`, `"host"`, `"none"`, or a user network's name or id.
    pub network: String,
    /// Extra names peers on a user-defined network can resolve.
    pub aliases: Vec<String>,
    /// The container's `/etc/hosts` file, written by `attach` (it is later
    /// bind-mounted into the container and rewritten in place).
    pub hosts_file: PathBuf,
    /// Extra names in that file (`--add-host`, `host.docker.internal`).
    #[serde(default)]
    pub extra_hosts: Vec<crate::ExtraHost>,
}

/// A container's connection to a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Name of the network.
    pub network: String,
    /// Id of the network.
    pub network_id: String,
    /// The namespace to join (OCI `linux.namespaces` `{type: network, path}`);
    /// `None` on the host network.
    pub netns_path: Option<PathBuf>,
    /// The container's address on eth0.
    pub ip: Option<Ipv4Addr>,
    /// Prefix length of `ip`; 0 without an address.
    pub prefix_len: u8,
    /// The default gateway (the bridge's address).
    pub gateway: Option<Ipv4Addr>,
    /// eth0's MAC address, `02:42:` followed by the IPv4 address.
    pub mac: Option<String>,
    /// Random id of this endpoint.
    pub endpoint_id: String,
}

/// A network as `inspect` and `list` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The driver.
    pub driver: Driver,
    /// IPv4 subnet (bridge networks).
    pub subnet: Option<Ipv4Net>,
    /// Gateway, the bridge's own address (bridge networks).
    pub gateway: Option<Ipv4Addr>,
    /// The bridge device (bridge networks).
    pub bridge: Option<String>,
    /// When the network was created.
    pub created: DateTime<Utc>,
    /// Whether the network is internal (no outside access).
    pub internal: bool,
    /// Labels given at creation.
    pub labels: BTreeMap<String, String>,
    /// Attached containers: `(container_id, endpoint)`.
    pub containers: Vec<(String, Endpoint)>,
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// One published port (Docker's `HostConfig.PortBindings` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// Address to listen on; `0.0.0.0` for all.
    pub host_ip: IpAddr,
    /// Port to listen on; 0 picks a free one.
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
    /// TCP or UDP.
    pub proto: Protocol,
}

impl PortSpec {
    /// Listen on all addresses, on `host_port` (0 = any), for `container_port`.
    pub fn new(host_port: u16, container_port: u16, proto: Protocol) -> Self {
        PortSpec {
            host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            host_port,
            container_port,
            proto,
        }
    }

    /// The address to forward to, given the container's IP.
    pub fn target(&self, container_ip: Ipv4Addr) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(container_ip), self.container_port)
    }
}
