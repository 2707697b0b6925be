//! Container networking for native mode: bridges, veth, IPAM, NAT, published ports.
//!
//! The daemon calls [`NetworkManager::attach`] before a container starts and
//! [`NetworkManager::detach`] after it stopped. Like a CNI plugin, `attach`
//! creates and configures the container's network namespace; the runtime
//! then joins it by path (OCI `linux.namespaces` entry
//! `{type: network, path: endpoint.netns_path}`).
//!
//! # API
//! ```text
//! NetworkManager::open(state_dir, netns_dir) -> Result<NetworkManager>
//! NetworkManager::open_with(ManagerConfig { state_dir, netns_dir, default_bridge,
//!     default_subnet, bridge_prefix, netns_pool_size }) -> Result<NetworkManager>
//! create(name, CreateOptions { subnet, labels, internal }) -> Result<NetworkInfo>
//! remove(name_or_id) -> Result<()>            // NetworkError::InUse while attached
//! list() -> Vec<NetworkInfo>;  inspect(name_or_id) -> Result<NetworkInfo>
//! attach(AttachRequest { container_id, container_name, hostname, network,
//!                        aliases, hosts_file }) -> Result<Endpoint>
//! connect(AttachRequest) -> Result<Endpoint>  // one more network, running container
//! disconnect(container_id, network) -> Result<()>
//! detach(container_id) -> Result<()>          // idempotent, every network
//! endpoints(container_id) -> Vec<Endpoint>
//! endpoint(container_id) -> Option<Endpoint>
//! netns_path(container_id) -> PathBuf;  teardown() -> Result<()>
//! PortForwarder::publish(PortSpec, target: SocketAddr).await -> Result<PublishedPort>
//! PortForwarder::publish_to(PortSpec, Arc<dyn ForwardTarget>).await -> Result<PublishedPort>
//! ```
//!
//! # Networks
//! * `"bridge"`: the default network, bridge device `vmrun0`. Its subnet is
//!   the first candidate (172.17.0.0/16 ... 172.31.0.0/16,
//!   192.168.0.0/20 ..., 10.88.0.0/24 ...) that overlaps no host route or
//!   address, unless configured or already on the device. Containers on it
//!   only see their own name in `/etc/hosts`.
//! * user networks ([`NetworkManager::create`]): bridge `vmr-<id prefix>`,
//!   subnet chosen the same way unless given. Containers resolve each other
//!   by container name, hostname and aliases through their `/etc/hosts`
//!   files, which are rewritten in place whenever a peer comes or goes,
//!   connects or disconnects (there is no embedded DNS server). A container
//!   may be on several networks ([`NetworkManager::connect`]: `eth1`, ...);
//!   its hosts file then lists its peers on each of them.
//! * `"host"`: no namespace ([`Endpoint::netns_path`] is `None`); the hosts
//!   file is a copy of the host's.
//! * `"none"`: a namespace with only `lo` up.
//!
//! On a bridge network `attach` creates `<netns_dir>/<container_id>` (an
//! nsfs bind mount of a namespace made by a short-lived thread that
//! unshared it; a small pool keeps a few such namespaces ready, since
//! creating one is the slowest step),
//! a veth pair with the host side on the bridge and the peer created inside
//! the namespace as `eth0` with the MAC `02:42:<ip>`, sets `lo` and `eth0`
//! up, assigns the next free address and adds the default route via the
//! gateway (the bridge's `.1`). All of it goes through netlink; the only
//! processes spawned are `iptables`, once per network (MASQUERADE for the
//! subnet, FORWARD accept for the bridge; internal networks get DROP rules
//! instead), and `net.ipv4.ip_forward` is set to 1.
//!
//! `detach` unmounts the namespace at once and deletes the veth on a
//! background thread (a device deletion waits for an RCU grace period).
//! Hosts files are bind-mounted into containers, so they are always
//! rewritten in place, never replaced.
//!
//! # Containers in VMs
//! [`NetworkManager::connect_guest`] gives a container in a VM an address on a bridge
//! network with nothing made on this host (the guest agent wires it to a bridge in the
//! VM); its hosts file lists only peers in the same VM and every rewrite of it goes to the
//! [`HostsSink`] ([`NetworkManager::set_hosts_sink`]). See `guest.rs`.
//!
//! # Persistence
//! State is `networks.json` in the state directory. On open, bridges and
//! iptables rules are re-created if missing, endpoints whose namespace file
//! is gone are dropped (their addresses are released), and surviving
//! endpoints are put back on their bridge (a lost veth pair is re-created
//! inside the surviving namespace).
//!
//! # Threads
//! [`NetworkManager`] is `Send + Sync` and its methods block for a few
//! milliseconds (netlink, mounts; `iptables` only in `create`/`remove`/
//! `open`): call them from `spawn_blocking` in async code. Nothing ever
//! changes the namespace of the caller's thread.

mod connect;
mod error;
pub mod extra_hosts;
mod firewall;
mod forward_target;
mod guest;
mod hosts;
mod ipam;
mod manager;
pub mod netns;
mod netns_pool;
mod plumbing;
mod port_forward;
mod predefined;
mod state;
mod subnet_lock;
mod types;

pub use error::NetworkError;
pub use extra_hosts::{ExtraHost, ExtraHostAddress};
pub use firewall::{bridge_rules, rule_exists, Rule};
pub use forward_target::{DatagramReceiver, DatagramSender, ForwardTarget, SocketTarget, UdpFlow};
pub use guest::{GuestEndpoint, HostsSink};
pub use hosts::{for_host_network as host_network_hosts_file, LOCALHOST_LINES};
pub use ipam::candidate_subnets;
pub use ipnet::Ipv4Net;
pub use manager::{ManagerConfig, NetworkManager};
pub use port_forward::{PortForwarder, PublishedPort};
pub use types::{
    AttachRequest, CreateOptions, Driver, Endpoint, NetworkInfo, PortSpec, Protocol,
    DEFAULT_BRIDGE_DEVICE, DEFAULT_NETWORK, HOST_NETWORK, NONE_NETWORK,
};
