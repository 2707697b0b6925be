//! The VM backend: each container runs in a microVM of its own (`--isolation vm`,
//! `--runtime vmrun-vm`), booted from the guest kernel and the agent initramfs by the
//! daemon's `VmBackend` (our VMM or QEMU), driven through the guest agent.
//!
//! A run: the image's layers become read-only ext4 disks ([`layers`], cached per layer),
//! the container's writable layer lives on its own sparse ext4 data disk (kept across
//! runs), the VM boots ([`machine`]), the agent mounts the disks and creates the
//! container with the spec the native backend would build, less the host's paths
//! ([`spec`]); stdio, waits and signals go through the agent ([`process`]), the guest's
//! json-file log is copied into the host's as it is written. When the container exits
//! the VM is shut down: the VM lives and dies with its container, and `start` boots a
//! fresh one. Monitors die with the daemon (`PR_SET_PDEATHSIG`), so after a daemon
//! restart a VM container is found exited.
//!
//! Published ports listen on the host and reach the container through the agent
//! ([`ports`]); binds and volumes are host directories shared in ([`shares`]); its
//! network is a TAP in the guest whose frames a `passt` on the host carries
//! ([`network`]). The `ContainerBackend` of these containers is in
//! [`container_vm_backend`]; the shared VM's is [`SharedVmBackend`].

mod assets;
mod clock;
mod container_vm_backend;
mod files;
mod guest;
mod layers;
pub mod machine;
pub mod network;
pub mod ports;
mod process;
mod shared;
mod shared_backend;
pub mod shares;
mod spec;
mod user_networks;
mod writable;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::runtime::Spec;
use vmrun_agent_protocol::DATA_DIR;
use vmrun_vm::{DiskSpec, VmBackend, VmSpec};

use super::{BackendError, ContainerSpec, NetworkEndpoint};
use crate::config::DaemonConfig;
pub use assets::GuestAssets;
use guest::GuestContainers;
use layers::LayerDisks;
use machine::Machine;
use shared::SharedVm;
pub use shared::SharedVmStatus;
use shared_backend::SharedVmBackend;
use user_networks::UserNetworks;

/// Memory of a VM whose container has no limit.
const DEFAULT_MEMORY_MIB: u32 = 256;
/// Memory beyond the container's limit for the guest kernel and agent.
const GUEST_OVERHEAD_MIB: u32 = 64;
/// Most vCPUs a container VM gets.
const MAX_VCPUS: u8 = 2;
/// Most layer disks (virtio-mmio slots are few).
const MAX_LAYERS: usize = 20;

/// A container's VM shutting down after its container exited.
struct Stopping {
    machine: Arc<Machine>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs each container in a microVM of its own.
pub struct VmContainerBackend {
    config: DaemonConfig,
    vm: Arc<dyn VmBackend>,
    assets: GuestAssets,
    layers: Arc<LayerDisks>,
    running: GuestContainers,
    stopping: Arc<Mutex<HashMap<String, Stopping>>>,
    networks: Arc<UserNetworks>,
}

impl VmContainerBackend {
    /// A backend launching VMs through `vm` from `assets`, its containers on user
    /// networks through `networks` (each alone in its VM).
    pub fn new(
        config: DaemonConfig,
        vm: Arc<dyn VmBackend>,
        assets: GuestAssets,
        networks: Arc<UserNetworks>,
    ) -> Self {
        let layers = Arc::new(LayerDisks::new(config.data_root.join("vm").join("layers")));
        VmContainerBackend {
            config,
            vm,
            assets,
            layers,
            running: GuestContainers::default(),
            stopping: Arc::default(),
            networks,
        }
    }

    /// The VM of the last run of `id` while it shuts down, taken.
    fn take_stopping(&self, id: &str) -> Option<Stopping> {
        self.stopping
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.config.container_dir(id)
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }

    fn data_disk(&self, id: &str) -> PathBuf {
        self.dir(id).join("vm-data.ext4")
    }

    fn serial_log(&self, id: &str) -> PathBuf {
        self.dir(id).join("vm-serial.log")
    }

    /// A short socket path: Unix socket paths (plus `_<port>`) must fit in 108 bytes.
    fn vsock_path(&self, id: &str) -> PathBuf {
        self.config
            .exec_root
            .join("vm")
            .join(format!("{}.vsock", id.get(..16).unwrap_or(id)))
    }

    /// Layer disks and the data disk, made now where missing.
    async fn disks(&self, c: &ContainerSpec) -> Result<Vec<DiskSpec>, BackendError> {
        if c.layers.len() > MAX_LAYERS {
            return Err(BackendError::BadRequest(format!(
                "the image has {} layers; containers in microVMs take at most {MAX_LAYERS}",
                c.layers.len()
            )));
        }
        let layers = self.layers.clone();
        let sources = c.layers.clone();
        let data = self.data_disk(&c.id);
        tokio::task::spawn_blocking(move || {
            let mut disks = Vec::new();
            for l in &sources {
                disks.push(DiskSpec {
                    path: layers.disk_for(l)?,
                    read_only: true,
                });
            }
            layers::ensure_data_disk(&data, layers::CONTAINER_DATA_DISK_BYTES)?;
            disks.push(DiskSpec {
                path: data,
                read_only: false,
            });
            Ok::<_, layers::DiskError>(disks)
        })
        .await
        .map_err(|e| BackendError::Failed(format!("making the VM's disks panicked: {e}")))?
        .map_err(|e| BackendError::Failed(format!("making the VM's disks: {e}")))
    }

    fn vm_spec(&self, c: &ContainerSpec, disks: Vec<DiskSpec>) -> VmSpec {
        let mut spec = VmSpec::new(&self.assets.kernel, self.vsock_path(&c.id));
        spec.initrd = Some(self.assets.initrd.clone());
        spec.memory_mib = match c.resources.memory.filter(|m| *m > 0) {
            Some(bytes) => {
                let mib = u32::try_from(bytes.unsigned_abs().div_ceil(1 << 20)).unwrap_or(u32::MAX);
                mib.saturating_add(GUEST_OVERHEAD_MIB).max(128)
            }
            None => DEFAULT_MEMORY_MIB,
        };
        spec.vcpus = match c.resources.nano_cpus.filter(|n| *n > 0) {
            Some(n) => u8::try_from(n.unsigned_abs().div_ceil(1_000_000_000))
                .unwrap_or(MAX_VCPUS)
                .clamp(1, MAX_VCPUS),
            None => 1,
        };
        spec.disks = disks;
        spec.serial_log = Some(self.serial_log(&c.id));
        spec
    }

    /// Boots `c`'s VM with its disks (made where missing), once its last run's VM has
    /// let go of the data disk.
    async fn boot(&self, c: &ContainerSpec) -> Result<Arc<Machine>, BackendError> {
        // The last run's VM must have let go of the data disk.
        if let Some(last) = self.take_stopping(&c.id) {
            let _ = last.task.await;
        }
        let dir = self.dir(&c.id);
        let vsock = self.vsock_path(&c.id);
        for d in [Some(dir.as_path()), vsock.parent()].into_iter().flatten() {
            std::fs::create_dir_all(d)
                .map_err(|e| BackendError::Failed(format!("creating {}: {e}", d.display())))?;
        }
        let disks = self.disks(c).await?;
        // A fresh console log: the boot waits for the agent's ready line in it.
        let serial = self.serial_log(&c.id);
        if let Err(e) = std::fs::remove_file(&serial) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(BackendError::Failed(format!(
                    "removing {}: {e}",
                    serial.display()
                )));
            }
        }
        let machine = Arc::new(
            Machine::boot(
                self.vm.clone(),
                self.vm_spec(c, disks),
                self.config.vm_agent_timeout,
            )
            .await?,
        );
        Ok(machine)
    }

    /// Mounts `c`'s layer disks and data disk in the guest: the guest's layer
    /// directories (bottom first) and the data disk's mount point.
    async fn mount_disks(
        &self,
        machine: &Machine,
        c: &ContainerSpec,
    ) -> Result<(Vec<PathBuf>, PathBuf), BackendError> {
        let agent = machine.agent();
        let mut guest_layers = Vec::new();
        for (i, layer) in c.layers.iter().enumerate() {
            let (path, _) = machine
                .call(
                    "mounting a layer disk",
                    agent.mount_layer(device(i), &layers::layer_key(layer)),
                )
                .await?;
            guest_layers.push(path);
        }
        let (data, _) = machine
            .call(
                "mounting the data disk",
                agent.mount_data_disk(device(c.layers.len())),
            )
            .await?;
        debug_assert_eq!(data, Path::new(DATA_DIR));
        Ok((guest_layers, data))
    }

    /// Mounts the disks in the guest and creates the container there.
    async fn create_in_guest(
        &self,
        machine: &Arc<Machine>,
        c: &ContainerSpec,
        oci: &Spec,
        shares: Vec<shares::GuestShare>,
    ) -> Result<(guest::GuestLinks, Option<NetworkEndpoint>), BackendError> {
        let (guest_layers, data) = self.mount_disks(machine, c).await?;
        guest::create_container(
            machine,
            c,
            oci,
            (guest_layers, data.join("rw")),
            shares,
            &self.log_path(&c.id),
            guest::NetworkPlace {
                networks: &self.networks,
                domain: &user_networks::own_vm_domain(&c.id),
                hosts_file: self.dir(&c.id).join("hosts"),
            },
        )
        .await
    }

    /// Where `c`'s files are for `docker cp`/`export`: its running VM, or (stopped) a VM
    /// booted for the operation with its disks (and with `volumes` its binds and volumes,
    /// shared in), shut down once the operation ends.
    async fn files_at(
        &self,
        c: &ContainerSpec,
        volumes: bool,
    ) -> Result<files::FilesAt, BackendError> {
        if let Ok(machine) = self.running.machine(&c.id) {
            return Ok(files::FilesAt::running(machine));
        }
        let machine = self.boot(c).await?;
        let vm = FilesVm {
            id: c.id.clone(),
            machine: machine.clone(),
            stopping: self.stopping.clone(),
        };
        let (layers, data) = self.mount_disks(&machine, c).await?;
        // Binds and named volumes alike are host directories, shared into the VM.
        let (guest_shares, guest_mounts): (Vec<_>, Vec<_>) = c
            .mounts
            .iter()
            .filter(|_| volumes)
            .enumerate()
            .map(|(i, m)| shares::share_mount(c, i, m))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        let (stopped_mounts, running_shares) =
            files::stopped_mounts(&machine, guest_shares, &guest_mounts).await?;
        Ok(files::FilesAt {
            machine,
            stopped: Some(vmrun_agent_protocol::RootfsSpec {
                layers,
                writable: Some(data.join("rw")),
            }),
            stopped_mounts,
            // The shares end before the VM.
            _keep: Some(Box::new((running_shares, vm))),
        })
    }
}

/// A stopped container's VM booted for a `docker cp`/`export`: shut down when dropped,
/// recorded as its container's last VM so a `start` waits until the data disk is free.
struct FilesVm {
    id: String,
    machine: Arc<Machine>,
    stopping: Arc<Mutex<HashMap<String, Stopping>>>,
}

/// Shuts `machine` down cleanly in the background, recorded in `stopping` as container
/// `id`'s last VM (a `start` waits for it to let go of the data disk); returns the one it
/// replaces.
fn shut_down_as(
    stopping: &Mutex<HashMap<String, Stopping>>,
    rt: &tokio::runtime::Handle,
    id: &str,
    machine: Arc<Machine>,
) -> Option<Stopping> {
    let task = rt.spawn({
        let machine = machine.clone();
        async move { machine.shutdown().await }
    });
    stopping
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.to_string(), Stopping { machine, task })
}

impl Drop for FilesVm {
    fn drop(&mut self) {
        let machine = self.machine.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(container = %self.id, "no runtime to stop the VM booted for its files");
            return;
        };
        if let Some(old) = shut_down_as(&self.stopping, &rt, &self.id, machine) {
            rt.spawn(async move { old.machine.kill().await });
        }
    }
}

/// The per-container and shared VM backends over one monitor and one layer-image cache;
/// the second is also the shared VM's control.
pub fn vm_backends(
    config: &DaemonConfig,
    monitor: Arc<dyn VmBackend>,
    accelerator: &str,
    assets: GuestAssets,
    network: Arc<vmrun_network::NetworkManager>,
) -> (Arc<VmContainerBackend>, Arc<SharedVmBackend>) {
    let networks = UserNetworks::new(network);
    let per_container = Arc::new(VmContainerBackend::new(
        config.clone(),
        monitor.clone(),
        assets.clone(),
        networks.clone(),
    ));
    let shared = Arc::new(SharedVm::new(
        config,
        monitor,
        accelerator,
        assets,
        per_container.layers.clone(),
    ));
    (
        per_container,
        Arc::new(SharedVmBackend::new(config.clone(), shared, networks)),
    )
}

/// The guest's block device of disk `i` (`/dev/vda`, `/dev/vdb`, ...).
fn device(i: usize) -> PathBuf {
    let letter = char::from(b'a' + u8::try_from(i % 26).unwrap_or(0));
    PathBuf::from(format!("/dev/vd{letter}"))
}
