//! What both VM backends do the same way once a container's VM runs: create the container
//! through the agent over its mounted layers, and serve execs, signals, stats and `top`
//! for the containers that run, each in its [`Machine`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::runtime::Spec;
use vmrun_agent_protocol::{CreateContainer, CreateExec, RootfsSpec};

use super::machine::Machine;
use super::network::{self, ContainerNetwork};
use super::ports::Forwards;
use super::process::VmProcess;
use super::shares::{self, ContainerShares, GuestShare};
use super::spec;
use super::user_networks::UserNetworks;
use crate::backend::{
    BackendError, ContainerSpec, CreatedContainer, ExecSpec, NetworkEndpoint, ProcessHandle,
    PublishedPort, ResourceStats, Resources, TopProcess,
};
use vmrun_network::GuestEndpoint;

/// A running container: its VM, the runtime spec it was created with (execs start
/// from it), what forwards its ports, and its network and shares.
struct Running {
    machine: Arc<Machine>,
    spec: Spec,
    ports: Forwards,
    links: GuestLinks,
}

/// What connects a container in a VM to the host besides its ports: its network (none
/// with `--network none`) and its shared directories. Dropping it ends both.
#[derive(Default)]
pub struct GuestLinks {
    _network: Option<ContainerNetwork>,
    _shares: ContainerShares,
}

/// The containers of one backend that run, by id.
#[derive(Default)]
pub struct GuestContainers {
    running: Mutex<HashMap<String, Running>>,
}

impl GuestContainers {
    /// Records that `id` runs in `machine` with its ports forwarded by `ports` and its
    /// network and shares in `links`; returns the VM of its previous run, if any.
    pub fn insert(
        &self,
        id: &str,
        machine: Arc<Machine>,
        spec: Spec,
        ports: Forwards,
        links: GuestLinks,
    ) -> Option<Arc<Machine>> {
        self.lock()
            .insert(
                id.to_string(),
                Running {
                    machine,
                    spec,
                    ports,
                    links,
                },
            )
            .map(|r| r.machine)
    }

    /// Forgets `id` and closes its published ports, network and shares; returns its VM.
    pub async fn remove(&self, id: &str) -> Option<Arc<Machine>> {
        let running = self.lock().remove(id)?;
        running.ports.close().await;
        drop(running.links);
        Some(running.machine)
    }

    /// How many containers run in `machine`.
    pub fn count_in(&self, machine: &Arc<Machine>) -> usize {
        self.lock()
            .values()
            .filter(|r| Arc::ptr_eq(&r.machine, machine))
            .count()
    }

    /// The VM `id` runs in.
    pub fn machine(&self, id: &str) -> Result<Arc<Machine>, BackendError> {
        self.lock()
            .get(id)
            .map(|r| r.machine.clone())
            .ok_or_else(|| BackendError::Gone(format!("container {id} is not running")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An exec in running container `c`.
    pub async fn create_exec(
        &self,
        c: &ContainerSpec,
        exec: &ExecSpec,
    ) -> Result<Arc<dyn ProcessHandle>, BackendError> {
        let (machine, oci) = {
            let running = self.lock();
            let r = running.get(&c.id).ok_or_else(|| {
                BackendError::Gone(format!("container {} is not running", c.short_id()))
            })?;
            (r.machine.clone(), r.spec.clone())
        };
        let process = spec::exec_process(&oci, exec, &c.layers)?;
        let process = serde_json::to_value(&process)
            .map_err(|e| BackendError::Failed(format!("encoding the exec's process: {e}")))?;
        let req = CreateExec {
            container_id: c.id.clone(),
            exec_id: exec.id.clone(),
            process,
            open_stdin: exec.open_stdin,
            console_size: exec.console_size,
        };
        machine
            .call("creating the exec", machine.agent().exec(req))
            .await?;
        Ok(Arc::new(VmProcess::new(machine, exec.id.clone())))
    }

    /// Signals container `id`'s init.
    pub async fn kill(&self, id: &str, signal: i32) -> Result<(), BackendError> {
        let machine = self.machine(id)?;
        machine
            .call("signalling", machine.agent().kill(id, signal))
            .await
    }

    /// Freezes (`docker pause`) or thaws container `id`.
    pub async fn freeze(&self, id: &str, frozen: bool) -> Result<(), BackendError> {
        let machine = self.machine(id)?;
        let what = if frozen { "pausing" } else { "unpausing" };
        machine.call(what, machine.agent().freeze(id, frozen)).await
    }

    /// Applies `docker update`'s `changed` limits to container `id`.
    pub async fn update(&self, id: &str, changed: &Resources) -> Result<(), BackendError> {
        let resources = crate::backend::native::spec::updated_resources(changed)?;
        let resources = serde_json::to_value(&resources)
            .map_err(|e| BackendError::Failed(format!("encoding the limits: {e}")))?;
        let machine = self.machine(id)?;
        machine
            .call("updating", machine.agent().update_resources(id, resources))
            .await
    }

    /// cgroup figures of container `id`.
    pub async fn stats(&self, id: &str) -> Result<ResourceStats, BackendError> {
        let machine = self.machine(id)?;
        let s = machine
            .call("reading stats", machine.agent().stats(id))
            .await?;
        Ok(ResourceStats {
            memory_usage: s.memory_usage,
            memory_max_usage: s.memory_max_usage,
            memory_limit: s.memory_limit,
            memory_cache: s.memory_cache,
            cpu_usage_ns: s.cpu_usage_ns,
            cpu_user_ns: s.cpu_user_ns,
            cpu_system_ns: s.cpu_system_ns,
            pids_current: s.pids_current,
            pids_limit: s.pids_limit,
        })
    }

    /// Processes of container `id`.
    pub async fn top(&self, id: &str) -> Result<Vec<TopProcess>, BackendError> {
        let machine = self.machine(id)?;
        let processes = machine
            .call("listing processes", machine.agent().top(id))
            .await?;
        Ok(processes
            .into_iter()
            .map(|p| TopProcess {
                pid: p.pid,
                ppid: p.ppid,
                uid: p.uid,
                cmd: p.cmd,
            })
            .collect())
    }
}

/// What `create` hands the engine for container `id` running in `machine` with its
/// ports published as `ports` (and forwarded automatically as `auto_ports` says) and its
/// first user network's `endpoint`.
pub fn created(
    machine: Arc<Machine>,
    id: &str,
    ports: Vec<PublishedPort>,
    auto_ports: Option<super::ports::AutoPorts>,
    endpoint: Option<NetworkEndpoint>,
) -> CreatedContainer {
    CreatedContainer {
        monitor_pid: i32::try_from(machine.pid()).unwrap_or(0),
        process: Arc::new(VmProcess::new(machine, id.to_string())),
        endpoint,
        ports,
        auto_ports,
    }
}

/// Where a container in a VM sits among user networks: the networks of its VMs, its
/// domain (the VM) and the host-side copy of its hosts file.
pub struct NetworkPlace<'a> {
    /// Shared by both VM backends.
    pub networks: &'a UserNetworks,
    /// [`super::user_networks::SHARED_DOMAIN`] or a VM of its own.
    pub domain: &'a str,
    /// The copy on this host (the manager writes it like a native container's).
    pub hosts_file: PathBuf,
}

/// Creates container `c` in `machine` over the guest's layer directories `layers` (bottom
/// first) with its writable layer in `writable` and `shares` mounted first (`oci` binds
/// them), starts copying its log to `host_log`, and connects its network (none for
/// `--network none`), and its first user network where `place` says. Returns its links
/// and that network's endpoint.
pub async fn create_container(
    machine: &Arc<Machine>,
    c: &ContainerSpec,
    oci: &Spec,
    (layers, writable): (Vec<PathBuf>, PathBuf),
    shares: Vec<GuestShare>,
    host_log: &Path,
    place: NetworkPlace<'_>,
) -> Result<(GuestLinks, Option<NetworkEndpoint>), BackendError> {
    let first = place
        .networks
        .first_network(c, place.domain, place.hosts_file)
        .await?;
    let created = create_wired(
        machine,
        c,
        oci,
        (layers, writable),
        shares,
        host_log,
        (place.networks, first.as_ref()),
    )
    .await;
    match created {
        Ok(links) => {
            place.networks.register(&c.id, machine);
            let endpoint = first
                .as_ref()
                .and_then(|e| crate::backend::native::endpoint_state(&e.endpoint));
            Ok((links, endpoint))
        }
        Err(e) => {
            place.networks.release(&c.id).await;
            Err(e)
        }
    }
}

async fn create_wired(
    machine: &Arc<Machine>,
    c: &ContainerSpec,
    oci: &Spec,
    (layers, writable): (Vec<PathBuf>, PathBuf),
    shares: Vec<GuestShare>,
    host_log: &Path,
    (networks, first): (&UserNetworks, Option<&GuestEndpoint>),
) -> Result<GuestLinks, BackendError> {
    let shares = shares::connect(machine, shares).await?;
    let mut etc_files = network::etc_files(c);
    if first.is_some() {
        if let Some(hosts) = networks.hosts_text(&c.id) {
            etc_files.hosts = hosts;
        }
    }
    let spec = serde_json::to_value(oci)
        .map_err(|e| BackendError::Failed(format!("encoding the runtime spec: {e}")))?;
    let req = CreateContainer {
        id: c.id.clone(),
        spec,
        rootfs: RootfsSpec {
            layers,
            writable: Some(writable),
        },
        user: c.process.user.clone(),
        tty: c.process.tty,
        open_stdin: c.process.open_stdin,
        stdin_once: c.process.stdin_once,
        console_size: c.process.console_size,
        log_path: None,
        log_rotation: c.log_rotation.map(guest_log_rotation),
        etc_files: Some(etc_files),
    };
    machine
        .call("creating the container", machine.agent().create(req))
        .await?;
    machine
        .follow_log(&c.id, host_log, c.log_rotation.map(Into::into))
        .await?;
    let network = if network::wants_network(c) {
        Some(network::connect(machine, &c.id).await?)
    } else {
        None
    };
    if let Some(first) = first {
        networks.wire(machine, &c.id, first).await?;
    }
    Ok(GuestLinks {
        _network: network,
        _shares: shares,
    })
}

/// Smallest file and count of the guest's copy of a rotated log.
const GUEST_LOG_MIN_FILE: u64 = 1 << 20;
const GUEST_LOG_MIN_FILES: u32 = 2;

/// How the guest's copy of a log rotates when the container's log does (`rotation`, which
/// the host's copy follows exactly). The guest's copy only feeds the host's, through a
/// stream that polls it: bounded, so the VM's disk does not fill with what the host
/// already keeps, but with files of at least 1 MiB and at least two, so the stream keeps
/// up with all but a container writing over 10 MB/s, and the host's copy holds what a
/// native container's would (a 1 KiB guest file rotated away between two polls lost
/// records the host would have kept).
fn guest_log_rotation(rotation: crate::backend::LogRotation) -> vmrun_agent_protocol::LogRotation {
    vmrun_agent_protocol::LogRotation {
        max_size: rotation.max_size.max(GUEST_LOG_MIN_FILE),
        max_files: rotation.max_files.max(GUEST_LOG_MIN_FILES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LogRotation;

    #[test]
    fn the_guest_copy_of_a_rotated_log_has_room_to_be_streamed() {
        let small = guest_log_rotation(LogRotation {
            max_size: 1024,
            max_files: 3,
        });
        assert_eq!((small.max_size, small.max_files), (1 << 20, 3));
        let one_big_file = guest_log_rotation(LogRotation {
            max_size: 10 << 20,
            max_files: 1,
        });
        assert_eq!(
            (one_big_file.max_size, one_big_file.max_files),
            (10 << 20, 2)
        );
    }
}
