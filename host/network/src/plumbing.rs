//! Kernel objects of bridge networks: bridge devices and the veth pair plus
//! namespace of each endpoint.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use ipnet::Ipv4Net;

use crate::error::NetworkError;
use crate::netns::{self, UnpinnedNetns};
use vmrun_netlink::{is_exists, Netlink, VethPair};

/// Name of the container side of every veth pair.
pub(crate) const CONTAINER_INTERFACE: &str = "eth0";

fn host_netlink() -> Result<Netlink, NetworkError> {
    Netlink::open().map_err(|e| NetworkError::netlink("open socket", e))
}

/// Creates the bridge if needed, gives it the gateway address and sets it up.
/// Returns its interface index.
pub(crate) fn ensure_bridge(
    name: &str,
    gateway: Ipv4Addr,
    prefix_len: u8,
) -> Result<u32, NetworkError> {
    let mut netlink = host_netlink()?;
    if netlink
        .link_index(name)
        .map_err(|e| NetworkError::netlink(format!("get link {name}"), e))?
        .is_none()
    {
        match netlink.create_bridge(name) {
            Ok(()) => tracing::info!(bridge = name, "created bridge"),
            Err(e) if is_exists(&e) => {}
            Err(e) => return Err(NetworkError::netlink(format!("create bridge {name}"), e)),
        }
    }
    let index = netlink
        .link_index(name)
        .map_err(|e| NetworkError::netlink(format!("get link {name}"), e))?
        .ok_or_else(|| {
            NetworkError::netlink(
                format!("get link {name}"),
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })?;
    match netlink.add_address(index, gateway, prefix_len) {
        Ok(()) => {}
        Err(e) if is_exists(&e) => {}
        Err(e) => {
            return Err(NetworkError::netlink(
                format!("add {gateway}/{prefix_len} to {name}"),
                e,
            ))
        }
    }
    netlink
        .set_up(index)
        .map_err(|e| NetworkError::netlink(format!("set {name} up"), e))?;
    Ok(index)
}

/// Whether a link called `name` exists on the host.
pub(crate) fn link_exists(name: &str) -> Result<bool, NetworkError> {
    host_netlink()?
        .link_index(name)
        .map(|index| index.is_some())
        .map_err(|e| NetworkError::netlink(format!("get link {name}"), e))
}

/// Deletes a host link (bridge or veth). `Ok(false)` if it did not exist.
pub(crate) fn delete_link(name: &str) -> Result<bool, NetworkError> {
    host_netlink()?
        .delete_link_by_name(name)
        .map_err(|e| NetworkError::netlink(format!("delete link {name}"), e))
}

/// The IPv4 address (with prefix) already configured on a host device.
pub(crate) fn device_address(name: &str) -> Result<Option<Ipv4Net>, NetworkError> {
    let mut netlink = host_netlink()?;
    let Some(index) = netlink
        .link_index(name)
        .map_err(|e| NetworkError::netlink(format!("get link {name}"), e))?
    else {
        return Ok(None);
    };
    let addresses = netlink
        .addresses()
        .map_err(|e| NetworkError::netlink("dump addresses", e))?;
    Ok(addresses
        .into_iter()
        .find(|address| address.index == index)
        .map(|address| address.network))
}

/// Every subnet the host already uses: its routes (except default routes)
/// and the networks of its addresses.
pub(crate) fn host_subnets() -> Result<Vec<Ipv4Net>, NetworkError> {
    let mut netlink = host_netlink()?;
    let mut taken: Vec<Ipv4Net> = netlink
        .routes()
        .map_err(|e| NetworkError::netlink("dump routes", e))?
        .into_iter()
        .map(|route| route.destination)
        .filter(|destination| destination.prefix_len() > 0)
        .collect();
    taken.extend(
        netlink
            .addresses()
            .map_err(|e| NetworkError::netlink("dump addresses", e))?
            .into_iter()
            .map(|address| address.network.trunc()),
    );
    Ok(taken)
}

/// What [`connect`] needs to wire one container to a bridge.
pub(crate) struct EndpointWiring<'a> {
    pub netns_path: &'a Path,
    pub bridge: &'a str,
    pub host_veth: &'a str,
    /// The container side's name (`eth0`, `eth1`, ...).
    pub interface: &'a str,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: [u8; 6],
}

/// Creates the container's namespace and connects it to the bridge: a veth
/// pair whose host side is on the bridge and whose peer is `eth0` inside,
/// with the address, MAC and default route set. Undoes everything on error.
pub(crate) fn connect(
    wiring: &EndpointWiring<'_>,
    namespace: UnpinnedNetns,
) -> Result<(), NetworkError> {
    let mut inside = namespace.pin(wiring.netns_path)?;
    let result = wire(wiring, &mut inside);
    if result.is_err() {
        let _ = delete_link(wiring.host_veth);
        let _ = netns::remove(wiring.netns_path);
    }
    result
}

fn wire(wiring: &EndpointWiring<'_>, inside: &mut Netlink) -> Result<(), NetworkError> {
    let mut host = host_netlink()?;
    let bridge_index = bridge_index(&mut host, wiring.bridge)?;
    let namespace = File::open(wiring.netns_path).map_err(|source| NetworkError::Netns {
        path: wiring.netns_path.to_path_buf(),
        op: "open",
        source,
    })?;
    host.create_veth_into_netns(&VethPair {
        host_name: wiring.host_veth,
        bridge_index,
        peer_name: wiring.interface,
        peer_mac: wiring.mac,
        peer_netns_fd: namespace.as_raw_fd(),
    })
    .map_err(|e| NetworkError::netlink(format!("create veth {}", wiring.host_veth), e))?;

    let inside_error =
        |op: &str, e| NetworkError::netlink(format!("{op} in {}", wiring.netns_path.display()), e);
    let eth0 = inside
        .link_index(wiring.interface)
        .map_err(|e| inside_error("get interface", e))?
        .ok_or_else(|| {
            inside_error(
                "get interface",
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })?;
    inside
        .set_up(eth0)
        .map_err(|e| inside_error("set interface up", e))?;
    inside
        .add_address(eth0, wiring.ip, wiring.prefix_len)
        .map_err(|e| inside_error("add address", e))?;
    if let Some(gateway) = wiring.gateway {
        inside
            .add_default_route(gateway)
            .map_err(|e| inside_error("add default route", e))?;
    }
    Ok(())
}

/// Connects one more interface of an existing namespace (a running container joining
/// another network) to a bridge. Deletes the new veth on error.
pub(crate) fn connect_existing(wiring: &EndpointWiring<'_>) -> Result<(), NetworkError> {
    let mut inside = netns::run_in(wiring.netns_path, Netlink::open)?.map_err(|e| {
        NetworkError::netlink(format!("open socket in {}", wiring.netns_path.display()), e)
    })?;
    let result = wire(wiring, &mut inside);
    if result.is_err() {
        let _ = delete_link(wiring.host_veth);
    }
    result
}

/// Re-connects an existing endpoint after a restart: its host veth is put
/// back on the bridge (a re-created bridge has no ports), or, if the veth is
/// gone, a new pair is made into the still existing namespace.
pub(crate) fn repair(wiring: &EndpointWiring<'_>) -> Result<(), NetworkError> {
    let mut host = host_netlink()?;
    let bridge_index = bridge_index(&mut host, wiring.bridge)?;
    let veth = host
        .link_index(wiring.host_veth)
        .map_err(|e| NetworkError::netlink(format!("get link {}", wiring.host_veth), e))?;
    match veth {
        Some(index) => host.set_controller_up(index, bridge_index).map_err(|e| {
            NetworkError::netlink(format!("put {} on {}", wiring.host_veth, wiring.bridge), e)
        }),
        None => {
            let mut inside = netns::run_in(wiring.netns_path, Netlink::open)?.map_err(|e| {
                NetworkError::netlink(format!("open socket in {}", wiring.netns_path.display()), e)
            })?;
            tracing::info!(veth = wiring.host_veth, "re-creating a lost veth pair");
            wire(wiring, &mut inside)
        }
    }
}

fn bridge_index(host: &mut Netlink, bridge: &str) -> Result<u32, NetworkError> {
    host.link_index(bridge)
        .map_err(|e| NetworkError::netlink(format!("get link {bridge}"), e))?
        .ok_or_else(|| {
            NetworkError::netlink(
                format!("bridge {bridge} missing"),
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })
}

/// Removes an endpoint's veth pair and namespace. Idempotent; a missing veth
/// or namespace is not an error.
pub(crate) fn disconnect(
    host_veth: Option<&str>,
    netns_path: Option<&Path>,
) -> Result<(), NetworkError> {
    if let Some(veth) = host_veth {
        delete_link(veth)?;
    }
    if let Some(path) = netns_path {
        netns::remove(path)?;
    }
    Ok(())
}

/// Like [`disconnect`], but the veth is deleted on a background thread:
/// deleting a network device waits for an RCU grace period (tens of
/// milliseconds), which a stopping container need not wait for. The veth
/// name is unique to the endpoint, so nothing can reuse it meanwhile, and
/// the kernel deletes the pair by itself anyway once the namespace is freed.
pub(crate) fn disconnect_in_background(
    host_veth: Option<&str>,
    netns_path: Option<&Path>,
) -> Result<(), NetworkError> {
    if let Some(path) = netns_path {
        netns::remove(path)?;
    }
    if let Some(veth) = host_veth.map(str::to_string) {
        let spawned = std::thread::Builder::new()
            .name("veth-delete".into())
            .spawn(move || {
                if let Err(e) = delete_link(&veth) {
                    tracing::warn!(veth, error = %e, "deleting veth");
                }
            });
        if spawned.is_err() {
            // No thread to be had: delete it here.
            if let Some(veth) = host_veth {
                delete_link(veth)?;
            }
        }
    }
    Ok(())
}
