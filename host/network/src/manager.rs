//! [`NetworkManager`]: networks, endpoints and their persisted state.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::Utc;
use ipnet::Ipv4Net;
use rand::RngCore;

use crate::error::NetworkError;
use crate::hosts;
use crate::netns::UnpinnedNetns;
use crate::netns_pool::NetnsPool;
use crate::plumbing::{self, EndpointWiring};
use crate::state::{EndpointRecord, NetworkRecord, State};
use crate::subnet_lock::SubnetChoiceLock;
use crate::types::{
    AttachRequest, CreateOptions, Driver, Endpoint, NetworkInfo, DEFAULT_BRIDGE_DEVICE,
    DEFAULT_NETWORK, HOST_NETWORK, NONE_NETWORK,
};
use crate::{firewall, ipam, netns, predefined};

/// Longest Linux interface name.
const IFNAME_MAX: usize = 15;

/// Where the manager keeps things and how it names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerConfig {
    /// Directory of the persisted state (`networks.json`).
    pub state_dir: PathBuf,
    /// Directory of the namespace files, e.g. `/run/vmrun/netns`.
    pub netns_dir: PathBuf,
    /// Bridge device of the default network (`vmrun0`).
    pub default_bridge: String,
    /// Subnet of the default network; chosen from the candidates if `None`.
    pub default_subnet: Option<Ipv4Net>,
    /// Prefix of user networks' bridge devices (`vmr-`), followed by the
    /// start of the network id up to 15 characters.
    pub bridge_prefix: String,
    /// How many network namespaces to keep created ahead of time (0: none).
    pub netns_pool_size: usize,
}

impl ManagerConfig {
    /// The defaults for a daemon: bridge `vmrun0`, user bridges `vmr-<id>`.
    pub fn new(state_dir: &Path, netns_dir: &Path) -> Self {
        ManagerConfig {
            state_dir: state_dir.to_path_buf(),
            netns_dir: netns_dir.to_path_buf(),
            default_bridge: DEFAULT_BRIDGE_DEVICE.to_string(),
            default_subnet: None,
            bridge_prefix: "vmr-".to_string(),
            netns_pool_size: 2,
        }
    }
}

/// Creates, persists and tears down container networks. `Send + Sync`; every
/// method takes an internal lock, and the blocking ones (netlink, mounts,
/// iptables) take a few milliseconds: call them from a blocking context
/// (e.g. `tokio::task::spawn_blocking`).
pub struct NetworkManager {
    pub(crate) config: ManagerConfig,
    state: Mutex<State>,
    pool: NetnsPool,
    /// Told about every rewritten hosts file of a container in a VM.
    pub(crate) hosts_sink: std::sync::OnceLock<crate::guest::HostsSink>,
}

// The daemon shares one manager between threads.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<NetworkManager>();
};

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_container_id(id: &str) -> bool {
    valid_name(id) && id.len() <= 128
}

impl NetworkManager {
    /// Opens the manager with [`ManagerConfig::new`]'s defaults.
    pub fn open(state_dir: &Path, netns_dir: &Path) -> Result<Self, NetworkError> {
        Self::open_with(ManagerConfig::new(state_dir, netns_dir))
    }

    /// Loads the state, makes sure the predefined networks exist, and
    /// reconciles with the host: missing bridges and NAT rules are
    /// re-created, endpoints whose namespace file is gone are dropped.
    pub fn open_with(config: ManagerConfig) -> Result<Self, NetworkError> {
        if config.bridge_prefix.len() + 4 > IFNAME_MAX || config.default_bridge.len() > IFNAME_MAX {
            return Err(NetworkError::InvalidArgument(
                "bridge names must fit in 15 characters".into(),
            ));
        }
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| NetworkError::io(format!("create {}", config.state_dir.display()), e))?;
        netns::prepare_dir(&config.netns_dir)?;
        firewall::enable_ip_forward()?;
        let mut state = State::load(&config.state_dir)?;
        // Held until the default bridge has its address (in `reconcile`).
        let subnet_choice = SubnetChoiceLock::take()?;
        predefined::ensure(&config, &mut state)?;
        let manager = NetworkManager {
            pool: NetnsPool::new(config.netns_pool_size),
            hosts_sink: std::sync::OnceLock::new(),
            config,
            state: Mutex::new(state),
        };
        {
            let mut state = manager.lock();
            manager.reconcile(&mut state)?;
            drop(subnet_choice);
            state.save(&manager.config.state_dir)?;
        }
        Ok(manager)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reconcile(&self, state: &mut State) -> Result<(), NetworkError> {
        for network in state.networks.values() {
            if let (Driver::Bridge, Some(bridge), Some(subnet), Some(gateway)) = (
                network.driver,
                &network.bridge,
                network.subnet,
                network.gateway,
            ) {
                plumbing::ensure_bridge(bridge, gateway, subnet.prefix_len())?;
                firewall::ensure(&firewall::bridge_rules(bridge, &subnet, network.internal))?;
            }
        }
        let stale: Vec<String> = state
            .endpoints
            .values()
            .filter(|endpoint| {
                // A VM's endpoints: the VM ended with the daemon that ran it.
                endpoint.domain.is_some()
                    || matches!(&endpoint.netns_path, Some(path) if !netns::is_netns(path))
            })
            .map(|endpoint| endpoint.container_id.clone())
            .collect();
        for container_id in stale {
            let keys: Vec<String> = state
                .endpoints_of_container(&container_id)
                .map(|(key, _)| key.clone())
                .collect();
            let removed: Vec<EndpointRecord> = keys
                .iter()
                .filter_map(|key| state.endpoints.remove(key))
                .collect();
            for endpoint in removed {
                tracing::info!(container_id, "dropping endpoint whose namespace is gone");
                if endpoint.domain.is_some() {
                    self.refresh_peers(state, &endpoint.network_id);
                    continue;
                }
                if let Err(e) = plumbing::disconnect(
                    endpoint.host_veth.as_deref(),
                    endpoint.netns_path.as_deref(),
                ) {
                    tracing::warn!(container_id, error = %e, "cleaning up stale endpoint");
                }
                self.refresh_peers(state, &endpoint.network_id);
            }
        }
        for (key, endpoint) in &state.endpoints {
            let primary = *key == endpoint.container_id;
            let Some(network) = state.networks.get(&endpoint.network_id) else {
                continue;
            };
            let (Some(bridge), Some(veth), Some(path), Some(ip), Some(gateway)) = (
                network.bridge.as_deref(),
                endpoint.host_veth.as_deref(),
                endpoint.netns_path.as_deref(),
                endpoint.ip,
                network.gateway,
            ) else {
                continue;
            };
            let wiring = EndpointWiring {
                netns_path: path,
                bridge,
                host_veth: veth,
                interface: endpoint
                    .interface
                    .as_deref()
                    .unwrap_or(plumbing::CONTAINER_INTERFACE),
                ip,
                prefix_len: endpoint.prefix_len,
                gateway: (primary && !network.internal).then_some(gateway),
                mac: ipam::mac_for(ip),
            };
            if let Err(e) = plumbing::repair(&wiring) {
                tracing::warn!(container_id = endpoint.container_id, error = %e, "re-connecting endpoint");
            }
        }
        Ok(())
    }

    /// Creates a user-defined bridge network.
    pub fn create(&self, name: &str, opts: CreateOptions) -> Result<NetworkInfo, NetworkError> {
        if !valid_name(name) {
            return Err(NetworkError::InvalidArgument(format!(
                "invalid network name {name:?}"
            )));
        }
        if [DEFAULT_NETWORK, HOST_NETWORK, NONE_NETWORK].contains(&name) {
            return Err(NetworkError::Predefined(name.to_string()));
        }
        let mut state = self.lock();
        if state.network_by_name(name).is_some() {
            return Err(NetworkError::AlreadyExists(name.to_string()));
        }
        // Held until the new bridge has its address and so its route.
        let _subnet_choice = SubnetChoiceLock::take()?;
        let ours: Vec<(Ipv4Net, String)> = state
            .networks
            .values()
            .filter_map(|n| n.subnet.map(|s| (s, n.name.clone())))
            .collect();
        let subnet = match opts.subnet {
            Some(subnet) => {
                let subnet = subnet.trunc();
                if !ipam::usable(&subnet) {
                    return Err(NetworkError::InvalidArgument(format!(
                        "subnet {subnet} is too small"
                    )));
                }
                if let Some((_, other)) = ours.iter().find(|(s, _)| ipam::overlaps(s, &subnet)) {
                    return Err(NetworkError::SubnetOverlap {
                        subnet,
                        other: other.clone(),
                    });
                }
                subnet
            }
            None => {
                let mut taken = plumbing::host_subnets()?;
                taken.extend(ours.iter().map(|(s, _)| *s));
                ipam::choose_subnet(&taken).ok_or(NetworkError::NoSubnetAvailable)?
            }
        };
        let id = random_hex(32);
        let id_chars = IFNAME_MAX - self.config.bridge_prefix.len();
        let bridge = format!("{}{}", self.config.bridge_prefix, &id[..id_chars]);
        let gateway = ipam::gateway(&subnet);
        let record = NetworkRecord {
            id: id.clone(),
            name: name.to_string(),
            driver: Driver::Bridge,
            subnet: Some(subnet),
            gateway: Some(gateway),
            bridge: Some(bridge.clone()),
            created: Utc::now(),
            internal: opts.internal,
            labels: opts.labels,
            last_allocated: None,
            predefined: false,
        };
        let rules = firewall::bridge_rules(&bridge, &subnet, opts.internal);
        let setup = plumbing::ensure_bridge(&bridge, gateway, subnet.prefix_len())
            .and_then(|_| firewall::ensure(&rules));
        if let Err(e) = setup {
            firewall::remove(&rules);
            let _ = plumbing::delete_link(&bridge);
            return Err(e);
        }
        state.networks.insert(id.clone(), record);
        state.save(&self.config.state_dir)?;
        tracing::info!(network = name, %subnet, bridge, "created network");
        Ok(network_info(&state, &id))
    }

    /// Removes a user-defined network and its bridge. Refuses while
    /// endpoints are attached and for the predefined networks.
    pub fn remove(&self, name_or_id: &str) -> Result<(), NetworkError> {
        let mut state = self.lock();
        let network = state.resolve(name_or_id)?.clone();
        if network.predefined {
            return Err(NetworkError::Predefined(network.name));
        }
        let endpoints: Vec<String> = state
            .endpoints_of(&network.id)
            .map(|e| e.container_id.clone())
            .collect();
        if !endpoints.is_empty() {
            return Err(NetworkError::InUse {
                network: network.name,
                endpoints,
            });
        }
        remove_bridge(&network)?;
        state.networks.remove(&network.id);
        state.save(&self.config.state_dir)?;
        tracing::info!(network = network.name, "removed network");
        Ok(())
    }

    /// Every network, predefined ones included.
    pub fn list(&self) -> Vec<NetworkInfo> {
        let state = self.lock();
        state
            .networks
            .keys()
            .map(|id| network_info(&state, id))
            .collect()
    }

    /// One network by name, id or unique id prefix.
    pub fn inspect(&self, name_or_id: &str) -> Result<NetworkInfo, NetworkError> {
        let state = self.lock();
        let id = state.resolve(name_or_id)?.id.clone();
        Ok(network_info(&state, &id))
    }

    /// The endpoint of a container, if it is attached.
    pub fn endpoint(&self, container_id: &str) -> Option<Endpoint> {
        let state = self.lock();
        let record = state.endpoints.get(container_id)?;
        let name = state
            .networks
            .get(&record.network_id)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        Some(record.to_endpoint(&name))
    }

    /// The namespace file an attached container would get.
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.config.netns_dir.join(container_id)
    }

    /// Connects a container to a network before it starts; see the crate
    /// documentation for what each kind of network gets.
    pub fn attach(&self, req: AttachRequest) -> Result<Endpoint, NetworkError> {
        if !valid_container_id(&req.container_id) {
            return Err(NetworkError::InvalidArgument(format!(
                "invalid container id {:?}",
                req.container_id
            )));
        }
        let mut state = self.lock();
        if state.endpoints.contains_key(&req.container_id) {
            return Err(NetworkError::AlreadyAttached(req.container_id));
        }
        let network = state.resolve(&req.network)?.clone();
        let mut record = EndpointRecord {
            endpoint_id: random_hex(32),
            container_id: req.container_id.clone(),
            container_name: req.container_name.clone(),
            hostname: req.hostname.clone(),
            aliases: req.aliases.clone(),
            network_id: network.id.clone(),
            netns_path: None,
            ip: None,
            prefix_len: 0,
            gateway: None,
            mac: None,
            host_veth: None,
            hosts_file: req.hosts_file.clone(),
            interface: None,
            extra_hosts: req.extra_hosts.clone(),
            domain: None,
        };
        match network.driver {
            Driver::Host => {
                hosts::write_in_place(&req.hosts_file, &hosts::for_host_network(&req.extra_hosts))?
            }
            Driver::Null => {
                let path = self.netns_path(&req.container_id);
                self.fresh_namespace(&path)?.pin(&path)?;
                record.netns_path = Some(path.clone());
                let mut text = hosts::localhost_only();
                text.push_str(&crate::extra_hosts::render(&req.extra_hosts, None));
                if let Err(e) = hosts::write_in_place(&req.hosts_file, &text) {
                    let _ = netns::remove(&path);
                    return Err(e);
                }
            }
            Driver::Bridge => self.attach_bridge(&mut state, &network, &mut record)?,
        }
        let endpoint = record.to_endpoint(&network.name);
        state.endpoints.insert(req.container_id.clone(), record);
        if let Err(e) = state.save(&self.config.state_dir) {
            if let Some(record) = state.endpoints.remove(&req.container_id) {
                let _ =
                    plumbing::disconnect(record.host_veth.as_deref(), record.netns_path.as_deref());
            }
            return Err(e);
        }
        if network.driver == Driver::Bridge && !network.predefined {
            self.refresh_peers(&state, &network.id);
        }
        tracing::debug!(container_id = req.container_id, network = network.name, ip = ?endpoint.ip, "attached");
        Ok(endpoint)
    }

    fn attach_bridge(
        &self,
        state: &mut State,
        network: &NetworkRecord,
        record: &mut EndpointRecord,
    ) -> Result<(), NetworkError> {
        let (Some(subnet), Some(gateway), Some(bridge)) =
            (network.subnet, network.gateway, network.bridge.as_deref())
        else {
            return Err(NetworkError::InvalidArgument(format!(
                "network {} has no subnet",
                network.name
            )));
        };
        let (ip, mac) = state.free_address(network, &subnet, gateway)?;
        let netns_path = self.netns_path(&record.container_id);
        let host_veth = format!("veth{}", &record.endpoint_id[..IFNAME_MAX - 4]);
        let route = if network.internal {
            None
        } else {
            Some(gateway)
        };
        let wiring = EndpointWiring {
            netns_path: &netns_path,
            bridge,
            host_veth: &host_veth,
            interface: plumbing::CONTAINER_INTERFACE,
            ip,
            prefix_len: subnet.prefix_len(),
            gateway: route,
            mac,
        };
        if let Err(first) = plumbing::connect(&wiring, self.fresh_namespace(&netns_path)?) {
            // The bridge may have been deleted behind our back: re-create it once.
            if plumbing::link_exists(bridge)? {
                return Err(first);
            }
            plumbing::ensure_bridge(bridge, gateway, subnet.prefix_len())?;
            plumbing::connect(&wiring, self.fresh_namespace(&netns_path)?)?;
        }
        record.netns_path = Some(netns_path.clone());
        record.ip = Some(ip);
        record.prefix_len = subnet.prefix_len();
        record.gateway = Some(gateway);
        record.mac = Some(ipam::format_mac(&mac));
        record.host_veth = Some(host_veth.clone());
        let hosts_text = hosts::for_endpoint(state, network, record);
        if let Err(e) = hosts::write_in_place(&record.hosts_file, &hosts_text) {
            let _ = plumbing::disconnect(Some(&host_veth), Some(&netns_path));
            return Err(e);
        }
        if let Some(stored) = state.networks.get_mut(&network.id) {
            stored.last_allocated = Some(ip);
        }
        Ok(())
    }

    fn fresh_namespace(&self, path: &Path) -> Result<UnpinnedNetns, NetworkError> {
        self.pool.take().map_err(|source| NetworkError::Netns {
            path: path.to_path_buf(),
            op: "create namespace",
            source,
        })
    }

    /// Disconnects a container: deletes its veth and namespace, releases its
    /// address and updates its peers' hosts files. Idempotent.
    pub fn detach(&self, container_id: &str) -> Result<(), NetworkError> {
        let mut state = self.lock();
        let records: Vec<(String, EndpointRecord)> = state
            .endpoints_of_container(container_id)
            .map(|(key, record)| (key.clone(), record.clone()))
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        for (key, record) in &records {
            let netns_path = (key == container_id)
                .then_some(record.netns_path.as_deref())
                .flatten();
            if record.domain.is_none() {
                plumbing::disconnect_in_background(record.host_veth.as_deref(), netns_path)?;
            }
            state.endpoints.remove(key);
        }
        state.save(&self.config.state_dir)?;
        for (_, record) in &records {
            self.refresh_peers(&state, &record.network_id);
        }
        tracing::debug!(container_id, "detached");
        Ok(())
    }

    /// Rewrites, in place, the hosts file of every endpoint of a
    /// user-defined network. Failures are logged, not returned.
    pub(crate) fn refresh_peers(&self, state: &State, network_id: &str) {
        let Some(network) = state.networks.get(network_id) else {
            return;
        };
        if network.predefined || network.driver != Driver::Bridge {
            return;
        }
        let containers: HashSet<&str> = state
            .endpoints_of(network_id)
            .map(|e| e.container_id.as_str())
            .collect();
        for container_id in containers {
            self.refresh_container(state, container_id);
        }
    }

    /// Rewrites one container's hosts file; a container in a VM's new text also goes to
    /// the hosts sink ([`NetworkManager::set_hosts_sink`]).
    pub(crate) fn refresh_container(&self, state: &State, container_id: &str) {
        if let Some((text, domain)) = hosts::refresh_container(state, container_id) {
            if let Some(sink) = self.hosts_sink.get() {
                sink(container_id, &domain, &text);
            }
        }
    }

    /// Detaches every endpoint, deletes every bridge and its iptables rules,
    /// forgets all state and unmounts the namespace directory. For
    /// uninstalling, and for tests; the manager must not be used afterwards.
    pub fn teardown(&self) -> Result<(), NetworkError> {
        let container_ids: Vec<String> = self.lock().endpoints.keys().cloned().collect();
        for container_id in container_ids {
            self.detach(&container_id)?;
        }
        let mut state = self.lock();
        for network in state.networks.values() {
            remove_bridge(network)?;
        }
        state.networks.clear();
        state.save(&self.config.state_dir)?;
        netns::release_dir(&self.config.netns_dir);
        Ok(())
    }
}

fn remove_bridge(network: &NetworkRecord) -> Result<(), NetworkError> {
    if let (Some(bridge), Some(subnet)) = (&network.bridge, network.subnet) {
        plumbing::delete_link(bridge)?;
        firewall::remove(&firewall::bridge_rules(bridge, &subnet, network.internal));
    }
    Ok(())
}

fn network_info(state: &State, id: &str) -> NetworkInfo {
    let Some(network) = state.networks.get(id) else {
        return NetworkInfo {
            id: id.to_string(),
            name: String::new(),
            driver: Driver::Null,
            subnet: None,
            gateway: None,
            bridge: None,
            created: Utc::now(),
            internal: false,
            labels: BTreeMap::new(),
            containers: Vec::new(),
        };
    };
    NetworkInfo {
        id: network.id.clone(),
        name: network.name.clone(),
        driver: network.driver,
        subnet: network.subnet,
        gateway: network.gateway,
        bridge: network.bridge.clone(),
        created: network.created,
        internal: network.internal,
        labels: network.labels.clone(),
        containers: state
            .endpoints_of(id)
            .map(|e| (e.container_id.clone(), e.to_endpoint(&network.name)))
            .collect(),
    }
}
