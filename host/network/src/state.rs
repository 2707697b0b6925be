//! The persisted state: networks and endpoints, one JSON file.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::NetworkError;
use crate::types::{Driver, Endpoint};

const STATE_FILE: &str = "networks.json";

/// One network as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: Driver,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub bridge: Option<String>,
    pub created: DateTime<Utc>,
    pub internal: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Last address handed out; allocation continues after it.
    #[serde(default)]
    pub last_allocated: Option<Ipv4Addr>,
    /// Whether this is one of "bridge", "host", "none".
    #[serde(default)]
    pub predefined: bool,
}

/// One endpoint as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointRecord {
    pub endpoint_id: String,
    pub container_id: String,
    pub container_name: String,
    pub hostname: String,
    pub aliases: Vec<String>,
    pub network_id: String,
    pub netns_path: Option<PathBuf>,
    pub ip: Option<Ipv4Addr>,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: Option<String>,
    pub host_veth: Option<String>,
    pub hosts_file: PathBuf,
    /// The container side's device; `None`: `eth0`.
    #[serde(default)]
    pub interface: Option<String>,
    /// Extra names in its hosts file.
    #[serde(default)]
    pub extra_hosts: Vec<crate::ExtraHost>,
    /// Where a container in a VM is wired (`None`: on this host). Such an endpoint has no
    /// namespace or veth here ([`crate::guest`]), and only peers of the same domain share
    /// its bridge, so only they are listed in each other's hosts files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

impl EndpointRecord {
    pub fn to_endpoint(&self, network_name: &str) -> Endpoint {
        Endpoint {
            network: network_name.to_string(),
            network_id: self.network_id.clone(),
            netns_path: self.netns_path.clone(),
            ip: self.ip,
            prefix_len: self.prefix_len,
            gateway: self.gateway,
            mac: self.mac.clone(),
            endpoint_id: self.endpoint_id.clone(),
        }
    }
}

/// The key of a container's endpoint in [`State::endpoints`]: the container id for the
/// first one (which owns the namespace), `<container id>/<network id>` for the others.
pub(crate) fn endpoint_key(container_id: &str, network_id: &str, primary: bool) -> String {
    if primary {
        container_id.to_string()
    } else {
        format!("{container_id}/{network_id}")
    }
}

/// Everything the manager remembers across restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    /// Networks by id.
    pub networks: BTreeMap<String, NetworkRecord>,
    /// Endpoints by [`endpoint_key`].
    pub endpoints: BTreeMap<String, EndpointRecord>,
}

impl State {
    fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(STATE_FILE)
    }

    /// Loads the state, or an empty one if none was saved yet.
    pub fn load(state_dir: &Path) -> Result<State, NetworkError> {
        let path = Self::path(state_dir);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| NetworkError::State { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(NetworkError::io(format!("read {}", path.display()), e)),
        }
    }

    /// Saves atomically (write a temporary file, then rename it).
    pub fn save(&self, state_dir: &Path) -> Result<(), NetworkError> {
        let path = Self::path(state_dir);
        let temporary = state_dir.join(format!(".{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| NetworkError::State {
            path: path.clone(),
            source,
        })?;
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            fs::rename(&temporary, &path)
        };
        write().map_err(|e| NetworkError::io(format!("write {}", path.display()), e))
    }

    pub fn network_by_name(&self, name: &str) -> Option<&NetworkRecord> {
        self.networks.values().find(|network| network.name == name)
    }

    /// Finds a network by exact name, exact id, or unique id prefix.
    pub fn resolve(&self, name_or_id: &str) -> Result<&NetworkRecord, NetworkError> {
        if let Some(network) = self.network_by_name(name_or_id) {
            return Ok(network);
        }
        if let Some(network) = self.networks.get(name_or_id) {
            return Ok(network);
        }
        if name_or_id.is_empty() {
            return Err(NetworkError::NotFound(String::new()));
        }
        let mut matches = self
            .networks
            .values()
            .filter(|network| network.id.starts_with(name_or_id));
        match (matches.next(), matches.next()) {
            (Some(network), None) => Ok(network),
            (Some(_), Some(_)) => Err(NetworkError::Ambiguous(name_or_id.to_string())),
            _ => Err(NetworkError::NotFound(name_or_id.to_string())),
        }
    }

    /// A container's endpoints, the one owning its namespace first, with their keys.
    pub fn endpoints_of_container<'a>(
        &'a self,
        container_id: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a EndpointRecord)> + 'a {
        self.endpoints
            .iter()
            .filter(move |(_, endpoint)| endpoint.container_id == container_id)
    }

    /// Endpoints attached to the network `network_id`.
    pub fn endpoints_of<'a>(
        &'a self,
        network_id: &'a str,
    ) -> impl Iterator<Item = &'a EndpointRecord> + 'a {
        self.endpoints
            .values()
            .filter(move |endpoint| endpoint.network_id == network_id)
    }

    /// A free address of `network` (its `subnet`, less `gateway` and the addresses its
    /// endpoints hold) for a new endpoint, round-robin after the last one given, and the
    /// MAC that goes with it.
    pub fn free_address(
        &self,
        network: &NetworkRecord,
        subnet: &Ipv4Net,
        gateway: Ipv4Addr,
    ) -> Result<(Ipv4Addr, [u8; 6]), NetworkError> {
        let used: HashSet<Ipv4Addr> = self
            .endpoints_of(&network.id)
            .filter_map(|e| e.ip)
            .collect();
        let ip = crate::ipam::allocate(subnet, gateway, &used, network.last_allocated)
            .ok_or_else(|| NetworkError::AddressExhausted(network.name.clone()))?;
        Ok((ip, crate::ipam::mac_for(ip)))
    }
}
