//! Endpoints of containers in VMs ("guest endpoints"): the manager gives them an address
//! and MAC on a bridge network from the same IPAM as native containers, keeps their
//! records, and renders their hosts files like any other's, but makes no namespace, veth
//! or bridge port on this host. The guest agent wires the container to a bridge of its
//! own in the VM instead, from the [`GuestEndpoint`] returned here. Each guest endpoint
//! has a domain (the VM it is in): only peers of the same domain share its bridge, so
//! hosts files list only those. Every rewritten hosts file of such a container goes to the
//! [`HostsSink`], which carries it into the VM.
//!
//! Interfaces are `eth1`, `eth2`, ...: a VM container's `eth0` is its own link to the
//! host's network (and keeps the default route).

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::NetworkError;
use crate::manager::{random_hex, NetworkManager};
use crate::state::{endpoint_key, EndpointRecord};
use crate::types::{AttachRequest, Driver, Endpoint};
use crate::{hosts, ipam};

/// Longest Linux interface name.
const IFNAME_MAX: usize = 15;

/// Told `(container id, domain, text)` whenever the hosts file of a container in a VM is
/// rewritten. Called with the manager's lock held: it must not block or call back.
pub type HostsSink = Arc<dyn Fn(&str, &str, &str) + Send + Sync>;

/// What the guest needs to wire one container to one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestEndpoint {
    /// As for any container (its address, MAC, gateway, ids).
    pub endpoint: Endpoint,
    /// The network's bridge device name (the same name in the VM).
    pub bridge: String,
    /// A name for the veth side on the bridge, unique to this endpoint.
    pub host_veth: String,
    /// The container side's name (`eth1`, ...).
    pub interface: String,
    /// The container side's MAC address.
    pub mac: [u8; 6],
}

impl NetworkManager {
    /// Registers where rewritten hosts files of containers in VMs go (once; later calls
    /// are ignored).
    pub fn set_hosts_sink(&self, sink: HostsSink) {
        let _ = self.hosts_sink.set(sink);
    }

    /// Connects container `req.container_id`, which runs in VM domain `domain`, to bridge
    /// network `req.network`: its first network becomes its first endpoint, a further one
    /// is added beside it. `req.hosts_file` (a file on this host, written like a native
    /// container's) is used for the first one only. Peers of the same domain on the
    /// network get their hosts files rewritten.
    pub fn connect_guest(
        &self,
        req: AttachRequest,
        domain: &str,
    ) -> Result<GuestEndpoint, NetworkError> {
        let mut state = self.lock();
        let network = state.resolve(&req.network)?.clone();
        let (Driver::Bridge, Some(subnet), Some(gateway), Some(bridge)) = (
            network.driver,
            network.subnet,
            network.gateway,
            network.bridge.clone(),
        ) else {
            return Err(NetworkError::InvalidArgument(format!(
                "container cannot be connected to network {}",
                network.name
            )));
        };
        if state
            .endpoints_of_container(&req.container_id)
            .any(|(_, e)| e.network_id == network.id && e.ip.is_some())
        {
            return Err(NetworkError::AlreadyConnected {
                container: req.container_name.trim_start_matches('/').to_string(),
                network: network.name,
            });
        }
        let primary = state.endpoints.get(&req.container_id).cloned();
        // No endpoint yet, or only the placeholder a disconnect of the first one leaves.
        let replaces_primary = primary.as_ref().is_none_or(|p| p.host_veth.is_none());
        let used_interfaces: HashSet<String> = state
            .endpoints_of_container(&req.container_id)
            .filter_map(|(_, e)| e.host_veth.as_ref().and(e.interface.clone()))
            .collect();
        let interface = (1..)
            .map(|n| format!("eth{n}"))
            .find(|name| !used_interfaces.contains(name))
            .unwrap_or_else(|| "eth1".into());
        let (ip, mac) = state.free_address(&network, &subnet, gateway)?;
        let endpoint_id = random_hex(32);
        let host_veth = format!("vg{}", &endpoint_id[..IFNAME_MAX - 2]);
        let (hosts_file, extra_hosts) = match &primary {
            Some(p) => (p.hosts_file.clone(), p.extra_hosts.clone()),
            None => (req.hosts_file.clone(), req.extra_hosts.clone()),
        };
        let record = EndpointRecord {
            endpoint_id,
            container_id: req.container_id.clone(),
            container_name: req.container_name.clone(),
            hostname: req.hostname.clone(),
            aliases: req.aliases.clone(),
            network_id: network.id.clone(),
            netns_path: None,
            ip: Some(ip),
            prefix_len: subnet.prefix_len(),
            gateway: Some(gateway),
            mac: Some(ipam::format_mac(&mac)),
            host_veth: Some(host_veth.clone()),
            hosts_file,
            interface: Some(interface.clone()),
            extra_hosts,
            domain: Some(domain.to_string()),
        };
        let endpoint = record.to_endpoint(&network.name);
        let key = endpoint_key(&req.container_id, &network.id, replaces_primary);
        state.endpoints.insert(key, record);
        if let Some(stored) = state.networks.get_mut(&network.id) {
            stored.last_allocated = Some(ip);
        }
        state.save(&self.config.state_dir)?;
        self.refresh_container(&state, &req.container_id);
        self.refresh_peers(&state, &network.id);
        tracing::debug!(container_id = req.container_id, network = network.name, %ip, domain, "connected in a VM");
        Ok(GuestEndpoint {
            endpoint,
            bridge,
            host_veth,
            interface,
            mac,
        })
    }

    /// Disconnects a container in a VM from one network, as [`NetworkManager::disconnect`];
    /// returns the name of the veth side the guest must delete.
    pub fn disconnect_guest(
        &self,
        container_id: &str,
        network: &str,
    ) -> Result<Option<String>, NetworkError> {
        let host_veth = {
            let state = self.lock();
            let network_id = state.resolve(network)?.id.clone();
            let found = state
                .endpoints_of_container(container_id)
                .find(|(_, e)| e.network_id == network_id)
                .and_then(|(_, e)| e.host_veth.clone());
            found
        };
        self.disconnect(container_id, network)?;
        Ok(host_veth)
    }

    /// The hosts file a container has now, as its endpoints say; `None` when it has no
    /// endpoint (its file is not the manager's).
    pub fn hosts_text(&self, container_id: &str) -> Option<String> {
        let state = self.lock();
        state.endpoints_of_container(container_id).next()?;
        Some(hosts::for_container(&state, container_id))
    }
}
