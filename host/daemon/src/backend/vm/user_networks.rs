//! Containers in VMs on user networks: reaching each other by name, as natively.
//!
//! The daemon's `NetworkManager` gives a container in a VM an address on each bridge
//! network it joins (the same IPAM as native containers, so inspect shows the address it
//! really has) without touching this host ([`NetworkManager::connect_guest`]); the agent
//! then makes the network's bridge in the guest and a veth pair into the container
//! (`eth1`, ...; `eth0` stays its link to the host's network, with the default route).
//! Containers of the same VM on the same network share that bridge; bridges have no
//! address in the guest, so networks stay apart. Names resolve through each container's
//! `/etc/hosts`, rendered by the manager like a native container's (peers of the same VM
//! only) and written into the guest by the agent ([`Op::WriteHosts`]) every time the
//! manager rewrites it: a peer started, stopped, connected or disconnected.
//!
//! [`Op::WriteHosts`]: vmrun_agent_protocol::Op::WriteHosts

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use vmrun_agent_protocol::network::{GuestNetwork, NetworkLink};
use vmrun_network::{
    AttachRequest, ExtraHost, ExtraHostAddress, GuestEndpoint, NetworkManager, DEFAULT_NETWORK,
    HOST_NETWORK, NONE_NETWORK,
};

use super::machine::Machine;
use crate::backend::{BackendError, ContainerSpec, NetworkEndpoint};

/// The domain of the shared VM's containers.
pub const SHARED_DOMAIN: &str = "shared-vm";

/// The domain of a container in a VM of its own.
pub fn own_vm_domain(id: &str) -> String {
    format!("vm/{id}")
}

type HostsUpdate = (String, String);

/// User networks of the containers in VMs, shared by both VM backends.
pub struct UserNetworks {
    manager: Arc<NetworkManager>,
    /// Containers the agent has (their hosts files can be written), by id.
    machines: Arc<Mutex<HashMap<String, Arc<Machine>>>>,
    updates: mpsc::UnboundedSender<HostsUpdate>,
    /// The writer's end until the writer task starts (at the first container).
    pending: Mutex<Option<mpsc::UnboundedReceiver<HostsUpdate>>>,
}

impl UserNetworks {
    /// Over `manager`, whose rewritten hosts files of VM containers come here.
    pub fn new(manager: Arc<NetworkManager>) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink_tx = tx.clone();
        manager.set_hosts_sink(Arc::new(move |id: &str, _domain: &str, text: &str| {
            let _ = sink_tx.send((id.to_string(), text.to_string()));
        }));
        Arc::new(UserNetworks {
            manager,
            machines: Arc::default(),
            updates: tx,
            pending: Mutex::new(Some(rx)),
        })
    }

    fn machines(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Machine>>> {
        self.machines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the task that carries hosts files into VMs, in order, once.
    fn start_writer(&self) {
        let Some(mut rx) = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let machines = self.machines.clone();
        tokio::spawn(async move {
            while let Some((id, text)) = rx.recv().await {
                let machine = machines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&id)
                    .cloned();
                let Some(machine) = machine else { continue };
                if let Err(e) = machine
                    .call(
                        "updating /etc/hosts",
                        machine.agent().write_hosts(&id, text),
                    )
                    .await
                {
                    tracing::debug!(container = %id, "{e}");
                }
            }
        });
    }

    /// `c`'s first network when it is a user network: its address there (the endpoint is
    /// recorded; the guest is wired by [`Self::wire`] once the container exists).
    pub async fn first_network(
        &self,
        c: &ContainerSpec,
        domain: &str,
        hosts_file: std::path::PathBuf,
    ) -> Result<Option<GuestEndpoint>, BackendError> {
        let mode = c.network.mode.as_str();
        if [DEFAULT_NETWORK, HOST_NETWORK, NONE_NETWORK, ""].contains(&mode)
            || mode.starts_with("container:")
        {
            return Ok(None);
        }
        let manager = self.manager.clone();
        let req = request(c, mode, &c.network.aliases, hosts_file);
        let domain = domain.to_string();
        blocking(move || {
            // A stale endpoint of a run that ended unseen.
            let _ = manager.detach(&req.container_id);
            manager.connect_guest(req, &domain)
        })
        .await
        .map(Some)
    }

    /// The hosts file container `id` has now, when it is on a user network.
    pub fn hosts_text(&self, id: &str) -> Option<String> {
        self.manager.hosts_text(id)
    }

    /// Makes `endpoint`'s bridge and veth in `machine` for container `id`.
    pub async fn wire(
        &self,
        machine: &Arc<Machine>,
        id: &str,
        endpoint: &GuestEndpoint,
    ) -> Result<(), BackendError> {
        let Some(address) = endpoint.endpoint.ip else {
            return Ok(());
        };
        let link = NetworkLink {
            bridge: endpoint.bridge.clone(),
            host_veth: endpoint.host_veth.clone(),
            interface: endpoint.interface.clone(),
            address,
            prefix_len: endpoint.endpoint.prefix_len,
            mac: endpoint.mac,
        };
        machine
            .call(
                "connecting the container to its network",
                machine.agent().connect_network(id, link),
            )
            .await
    }

    /// Container `id` exists in `machine`: its hosts file follows its peers from now on.
    pub fn register(&self, id: &str, machine: &Arc<Machine>) {
        self.start_writer();
        self.machines().insert(id.to_string(), machine.clone());
        // What changed between its creation and now (nothing to say off user networks).
        if let Some(text) = self.manager.hosts_text(id) {
            let _ = self.updates.send((id.to_string(), text));
        }
    }

    /// Container `id` stopped: its endpoints go and its peers' hosts files lose it.
    pub async fn release(&self, id: &str) {
        self.machines().remove(id);
        let manager = self.manager.clone();
        let owned = id.to_string();
        if let Err(e) = blocking(move || manager.detach(&owned)).await {
            tracing::warn!(container = id, "releasing its network endpoints: {e}");
        }
    }

    /// `docker network connect` of running container `c` (in `machine`, domain `domain`).
    pub async fn connect(
        &self,
        machine: &Arc<Machine>,
        c: &ContainerSpec,
        domain: &str,
        network: &str,
        aliases: &[String],
        hosts_file: std::path::PathBuf,
    ) -> Result<NetworkEndpoint, BackendError> {
        let manager = self.manager.clone();
        let req = request(c, network, aliases, hosts_file);
        let owned_domain = domain.to_string();
        let endpoint = blocking(move || manager.connect_guest(req, &owned_domain)).await?;
        if let Err(e) = self.wire(machine, &c.id, &endpoint).await {
            let manager = self.manager.clone();
            let (id, network) = (c.id.clone(), network.to_string());
            let _ = blocking(move || manager.disconnect(&id, &network)).await;
            return Err(e);
        }
        crate::backend::native::endpoint_state(&endpoint.endpoint)
            .ok_or_else(|| BackendError::Failed(format!("network {network} gave no address")))
    }

    /// `docker network disconnect` of running container `c` in `machine`.
    pub async fn disconnect(
        &self,
        machine: &Arc<Machine>,
        c: &ContainerSpec,
        network: &str,
    ) -> Result<(), BackendError> {
        let manager = self.manager.clone();
        let (id, owned) = (c.id.clone(), network.to_string());
        let veth = blocking(move || manager.disconnect_guest(&id, &owned)).await?;
        if let Some(veth) = veth {
            machine
                .call(
                    "disconnecting the container",
                    machine.agent().disconnect_network(&c.id, &veth),
                )
                .await?;
        }
        Ok(())
    }
}

/// The manager's request for `c` on `network`; `host-gateway` is the VM's gateway (the
/// host's loopback, as for every container in a VM).
fn request(
    c: &ContainerSpec,
    network: &str,
    aliases: &[String],
    hosts_file: std::path::PathBuf,
) -> AttachRequest {
    let gateway: Ipv4Addr = GuestNetwork::user_mode().gateway;
    let extra_hosts = c
        .extra_hosts
        .iter()
        .map(|h| ExtraHost {
            name: h.name.clone(),
            address: match h.address {
                ExtraHostAddress::HostGateway => ExtraHostAddress::Ip(IpAddr::V4(gateway)),
                other => other,
            },
        })
        .collect();
    AttachRequest {
        container_id: c.id.clone(),
        container_name: c.name.clone(),
        hostname: c.hostname.clone(),
        network: network.to_string(),
        aliases: aliases.to_vec(),
        hosts_file,
        extra_hosts,
    }
}

/// Runs a blocking manager call off the runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, vmrun_network::NetworkError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BackendError::Failed(format!("network setup panicked: {e}")))?
        .map_err(crate::backend::native::network_error)
}
