//! A container's networks beyond the first: `network connect`/`disconnect` (of a running
//! container through its backend, of a stopped one in its record alone), several networks
//! at create (`NetworkingConfig.EndpointsConfig`), and joining them again at each start.
//!
//! The record keeps the first network in `network_mode`/`aliases`/`endpoint` and the
//! others in `extra_networks`; disconnecting the first promotes the next one, or leaves
//! `network_mode` empty (no network: the container starts with a loopback only).

use std::sync::Arc;

use bollard_stubs::models::ContainerCreateBody;

use super::{spec, Engine, EngineError};
use crate::backend::{ContainerBackend, ContainerSpec};
use crate::state::{ContainerRecord, EndpointState, NetworkAttachment};

/// One network of a container as inspect shows it.
pub struct NetworkView {
    /// Network name.
    pub network: String,
    /// Aliases given.
    pub aliases: Vec<String>,
    /// Address while running.
    pub endpoint: Option<EndpointState>,
}

/// Every network of a container, the first one first.
pub fn networks_of(rec: &ContainerRecord) -> Vec<NetworkView> {
    let first = (!rec.network_mode.is_empty()).then(|| NetworkView {
        network: rec.network_mode.clone(),
        aliases: rec.aliases.clone(),
        endpoint: rec.endpoint.clone(),
    });
    first
        .into_iter()
        .chain(rec.extra_networks.iter().map(|n| NetworkView {
            network: n.network.clone(),
            aliases: n.aliases.clone(),
            endpoint: n.endpoint.clone(),
        }))
        .collect()
}

fn is_predefined(name: &str) -> bool {
    [
        vmrun_network::HOST_NETWORK,
        vmrun_network::NONE_NETWORK,
        vmrun_network::DEFAULT_NETWORK,
    ]
    .contains(&name)
}

impl Engine {
    /// A network's name and id, 404 when there is none such.
    fn network_named(&self, key: &str) -> Result<(String, String), EngineError> {
        match &self.network {
            Some(manager) => manager
                .inspect(key)
                .map(|n| (n.name, n.id))
                .map_err(|_| EngineError::not_found(format!("network {key} not found"))),
            None if is_predefined(key) => Ok((key.to_string(), key.to_string())),
            None => Err(EngineError::not_found(format!("network {key} not found"))),
        }
    }

    /// The networks of a create request beyond the first (API 1.44+ sends them all).
    pub(super) fn extra_networks(
        &self,
        body: &ContainerCreateBody,
        mode: &str,
    ) -> Result<Vec<NetworkAttachment>, EngineError> {
        let Some(configs) = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref())
        else {
            return Ok(Vec::new());
        };
        // The first network may be named as the client named it (`default`).
        let asked = body
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.as_deref())
            .unwrap_or("default");
        let mut names: Vec<&String> = configs
            .keys()
            .filter(|k| *k != mode && *k != asked && *k != "default")
            .collect();
        names.sort();
        let mut out: Vec<NetworkAttachment> = Vec::new();
        for name in names {
            let (network, _) = self.network_named(name)?;
            if network == mode || out.iter().any(|n| n.network == network) {
                continue;
            }
            if matches!(
                mode,
                vmrun_network::HOST_NETWORK | vmrun_network::NONE_NETWORK
            ) || is_predefined(&network) && network != vmrun_network::DEFAULT_NETWORK
            {
                return Err(EngineError::bad_request(format!(
                    "Container cannot be connected to network endpoints: {mode}, {network}"
                )));
            }
            out.push(NetworkAttachment {
                network,
                aliases: configs
                    .get(name)
                    .and_then(|c| c.aliases.clone())
                    .unwrap_or_default(),
                endpoint: None,
            });
        }
        Ok(out)
    }

    /// `POST /networks/{id}/connect`.
    pub async fn connect_container(
        &self,
        network: &str,
        key: &str,
        aliases: Vec<String>,
    ) -> Result<(), EngineError> {
        let (name, network_id) = self.network_named(network)?;
        let id = self.container(key)?.id;
        let _guard = self.lock_container(&id).await;
        let rec = self.container(&id)?;
        let host_config_mode = rec.host_config.network_mode.clone().unwrap_or_default();
        if [vmrun_network::HOST_NETWORK, vmrun_network::NONE_NETWORK]
            .contains(&host_config_mode.as_str())
            || [vmrun_network::HOST_NETWORK, vmrun_network::NONE_NETWORK].contains(&name.as_str())
        {
            return Err(EngineError::bad_request(
                "container cannot be disconnected from host network or connected to host network",
            ));
        }
        if self.connected_to(&rec, &name) {
            return Err(EngineError::Forbidden(format!(
                "endpoint with name {} already exists in network {name}",
                rec.name
            )));
        }
        let endpoint = if rec.is_running() {
            let (backend, spec) = self.backend_of(&rec)?;
            let e = backend.connect_network(&spec, &name, &aliases).await?;
            Some(spec::endpoint_state(&e))
        } else {
            None
        };
        self.store.update(&id, |r| {
            if r.network_mode.is_empty() {
                r.network_mode = name.clone();
                r.aliases = aliases.clone();
                r.endpoint = endpoint.clone();
            } else {
                r.extra_networks.push(NetworkAttachment {
                    network: name.clone(),
                    aliases: aliases.clone(),
                    endpoint: endpoint.clone(),
                });
            }
        })?;
        self.emit_network_event("connect", &network_id, &name, &id);
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_container(&self, network: &str, key: &str) -> Result<(), EngineError> {
        let (name, network_id) = self.network_named(network)?;
        let id = self.container(key)?.id;
        let _guard = self.lock_container(&id).await;
        let rec = self.container(&id)?;
        if !self.connected_to(&rec, &name) {
            return Err(EngineError::bad_request(format!(
                "container {id} is not connected to network {name}"
            )));
        }
        if rec.network_mode == vmrun_network::HOST_NETWORK {
            return Err(EngineError::bad_request(
                "container cannot be disconnected from host network or connected to host network",
            ));
        }
        if rec.is_running() {
            let (backend, spec) = self.backend_of(&rec)?;
            backend.disconnect_network(&spec, &name).await?;
        }
        self.store.update(&id, |r| {
            if self.same_network(&r.network_mode, &name) {
                if r.extra_networks.is_empty() {
                    r.network_mode.clear();
                    r.aliases.clear();
                    r.endpoint = None;
                } else {
                    let next = r.extra_networks.remove(0);
                    r.network_mode = next.network;
                    r.aliases = next.aliases;
                    r.endpoint = next.endpoint;
                }
            } else {
                r.extra_networks
                    .retain(|n| !self.same_network(&n.network, &name));
            }
        })?;
        self.emit_network_event("disconnect", &network_id, &name, &id);
        Ok(())
    }

    /// Joins a just-created container's further networks; what each gave, in order.
    pub(super) async fn join_extra_networks(
        &self,
        backend: &Arc<dyn ContainerBackend>,
        spec: &ContainerSpec,
        rec: &ContainerRecord,
    ) -> Result<Vec<Option<EndpointState>>, EngineError> {
        let mut out = Vec::new();
        for n in &rec.extra_networks {
            let e = backend
                .connect_network(spec, &n.network, &n.aliases)
                .await?;
            out.push(Some(spec::endpoint_state(&e)));
        }
        Ok(out)
    }

    fn connected_to(&self, rec: &ContainerRecord, name: &str) -> bool {
        networks_of(rec)
            .iter()
            .any(|n| self.same_network(&n.network, name))
    }

    /// Whether `saved` (a name or id as given at the time) names the network `name`.
    fn same_network(&self, saved: &str, name: &str) -> bool {
        saved == name
            || self
                .network_named(saved)
                .is_ok_and(|(saved_name, _)| saved_name == name)
    }

    fn emit_network_event(&self, action: &str, network_id: &str, name: &str, container: &str) {
        self.events.emit(
            "network",
            action,
            network_id,
            &[
                ("container", container.to_string()),
                ("name", name.to_string()),
                ("type", "bridge".to_string()),
            ],
        );
    }
}
