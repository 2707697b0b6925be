//! Connecting a running container to more networks, and disconnecting it.
//!
//! A container's first endpoint (made by [`NetworkManager::attach`]) owns its network
//! namespace and is keyed by the container id; every further network adds a veth pair
//! into that same namespace (`eth1`, `eth2`, ...), without a default route, keyed
//! `<container id>/<network id>`. Disconnecting the first endpoint keeps the namespace
//! (the container still runs) as an endpoint on the `none` network; the next connect
//! takes its place, with the default route. Every change rewrites, in place, the hosts
//! files of the container and of its peers on the network, which is how names resolve.

use std::collections::HashSet;

use crate::error::NetworkError;
use crate::ipam;
use crate::manager::{random_hex, NetworkManager};
use crate::plumbing::{self, EndpointWiring};
use crate::state::{endpoint_key, EndpointRecord};
use crate::types::{AttachRequest, Driver, Endpoint, NONE_NETWORK};

/// Longest Linux interface name.
const IFNAME_MAX: usize = 15;

impl NetworkManager {
    /// Connects an attached (running) container to one more bridge network, with
    /// `req.aliases` as extra names there.
    pub fn connect(&self, req: AttachRequest) -> Result<Endpoint, NetworkError> {
        let mut state = self.lock();
        let network = state.resolve(&req.network)?.clone();
        let primary = state
            .endpoints
            .get(&req.container_id)
            .cloned()
            .ok_or_else(|| NetworkError::NoNamespace(req.container_id.clone()))?;
        let netns_path = primary
            .netns_path
            .clone()
            .ok_or_else(|| NetworkError::NoNamespace(req.container_id.clone()))?;
        if network.driver != Driver::Bridge {
            return Err(NetworkError::InvalidArgument(format!(
                "container cannot be connected to network {}",
                network.name
            )));
        }
        if state
            .endpoints_of_container(&req.container_id)
            .any(|(_, e)| e.network_id == network.id)
        {
            return Err(NetworkError::AlreadyConnected {
                container: req.container_name.trim_start_matches('/').to_string(),
                network: network.name,
            });
        }
        // Only the `none` placeholder left: the new endpoint takes its place.
        let replaces_primary = primary.host_veth.is_none();
        let used_interfaces: HashSet<String> = state
            .endpoints_of_container(&req.container_id)
            .filter(|(_, e)| e.host_veth.is_some())
            .map(|(_, e)| e.interface.clone().unwrap_or_else(|| "eth0".into()))
            .collect();
        let interface = (0..)
            .map(|n| format!("eth{n}"))
            .find(|name| !used_interfaces.contains(name))
            .unwrap_or_else(|| "eth0".into());
        let (Some(subnet), Some(gateway), Some(bridge)) =
            (network.subnet, network.gateway, network.bridge.clone())
        else {
            return Err(NetworkError::InvalidArgument(format!(
                "network {} has no subnet",
                network.name
            )));
        };
        let (ip, mac) = state.free_address(&network, &subnet, gateway)?;
        let endpoint_id = random_hex(32);
        let host_veth = format!("veth{}", &endpoint_id[..IFNAME_MAX - 4]);
        let route = (replaces_primary && !network.internal).then_some(gateway);
        plumbing::connect_existing(&EndpointWiring {
            netns_path: &netns_path,
            bridge: &bridge,
            host_veth: &host_veth,
            interface: &interface,
            ip,
            prefix_len: subnet.prefix_len(),
            gateway: route,
            mac,
        })?;
        let record = EndpointRecord {
            endpoint_id,
            container_id: req.container_id.clone(),
            container_name: req.container_name.clone(),
            hostname: req.hostname.clone(),
            aliases: req.aliases.clone(),
            network_id: network.id.clone(),
            netns_path: Some(netns_path),
            ip: Some(ip),
            prefix_len: subnet.prefix_len(),
            gateway: Some(gateway),
            mac: Some(ipam::format_mac(&mac)),
            host_veth: Some(host_veth.clone()),
            hosts_file: primary.hosts_file.clone(),
            interface: Some(interface),
            extra_hosts: primary.extra_hosts.clone(),
            domain: None,
        };
        let endpoint = record.to_endpoint(&network.name);
        let key = endpoint_key(&req.container_id, &network.id, replaces_primary);
        state.endpoints.insert(key, record);
        if let Some(stored) = state.networks.get_mut(&network.id) {
            stored.last_allocated = Some(ip);
        }
        if let Err(e) = state.save(&self.config.state_dir) {
            let _ = plumbing::delete_link(&host_veth);
            return Err(e);
        }
        self.refresh_container(&state, &req.container_id);
        self.refresh_peers(&state, &network.id);
        tracing::debug!(container_id = req.container_id, network = network.name, %ip, "connected");
        Ok(endpoint)
    }

    /// Disconnects a running container from one network; its other endpoints stay.
    pub fn disconnect(&self, container_id: &str, network: &str) -> Result<(), NetworkError> {
        let mut state = self.lock();
        let network = state.resolve(network)?.clone();
        let Some((key, record)) = state
            .endpoints_of_container(container_id)
            .find(|(_, e)| e.network_id == network.id)
            .map(|(k, e)| (k.clone(), e.clone()))
        else {
            return Err(NetworkError::NotConnected {
                container: container_id.to_string(),
                network: network.name,
            });
        };
        if let (Some(veth), None) = (&record.host_veth, &record.domain) {
            plumbing::delete_link(veth)?;
        }
        if key == container_id {
            // The namespace stays with the running container.
            let none_id = state
                .network_by_name(NONE_NETWORK)
                .map(|n| n.id.clone())
                .unwrap_or_default();
            if let Some(primary) = state.endpoints.get_mut(&key) {
                primary.network_id = none_id;
                primary.ip = None;
                primary.prefix_len = 0;
                primary.gateway = None;
                primary.mac = None;
                primary.host_veth = None;
                primary.interface = None;
                primary.aliases.clear();
            }
        } else {
            state.endpoints.remove(&key);
        }
        state.save(&self.config.state_dir)?;
        self.refresh_container(&state, container_id);
        self.refresh_peers(&state, &network.id);
        tracing::debug!(container_id, network = network.name, "disconnected");
        Ok(())
    }

    /// Every endpoint of a container, the first one first.
    pub fn endpoints(&self, container_id: &str) -> Vec<Endpoint> {
        let state = self.lock();
        state
            .endpoints_of_container(container_id)
            .map(|(_, record)| {
                let name = state
                    .networks
                    .get(&record.network_id)
                    .map(|n| n.name.clone())
                    .unwrap_or_default();
                record.to_endpoint(&name)
            })
            .collect()
    }
}
