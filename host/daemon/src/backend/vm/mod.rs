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
//! ([`ports`]). Not yet: networking (the container has loopback only), binds and
//! volumes, `commit` of the writable layer.

mod assets;
mod clock;
mod files;
mod guest;
mod layers;
pub mod machine;
mod network;
mod ports;
mod process;
mod shared;
mod shared_backend;
pub mod shares;
mod spec;
mod user_networks;
mod writable;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use oci_spec::runtime::Spec;
use vmrun_agent_protocol::DATA_DIR;
use vmrun_vm::{DiskSpec, VmBackend, VmSpec};

use super::{
    BackendError, ByteStream, ContainerBackend, ContainerFiles, ContainerSpec, CreatedContainer,
    ExecSpec, ExtractOptions, GraphDriver, NetworkEndpoint, PathStat, ProcessHandle, Reconnected,
    ResourceStats,
};
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
    /// booted for the operation with its disks, shut down once the operation ends.
    async fn files_at(&self, c: &ContainerSpec) -> Result<files::FilesAt, BackendError> {
        if let Ok(machine) = self.running.machine(&c.id) {
            return Ok(files::FilesAt {
                machine,
                stopped: None,
                _keep: None,
            });
        }
        let machine = self.boot(c).await?;
        let keep = FilesVm {
            id: c.id.clone(),
            machine: machine.clone(),
            stopping: self.stopping.clone(),
        };
        let (layers, data) = self.mount_disks(&machine, c).await?;
        Ok(files::FilesAt {
            machine,
            stopped: Some(vmrun_agent_protocol::RootfsSpec {
                layers,
                writable: Some(data.join("rw")),
            }),
            _keep: Some(Box::new(keep)),
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

impl Drop for FilesVm {
    fn drop(&mut self) {
        let machine = self.machine.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(container = %self.id, "no runtime to stop the VM booted for its files");
            return;
        };
        let task = rt.spawn({
            let machine = machine.clone();
            async move { machine.shutdown().await }
        });
        let old = self
            .stopping
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.id.clone(), Stopping { machine, task });
        if let Some(old) = old {
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

#[async_trait]
impl ContainerBackend for VmContainerBackend {
    async fn create(&self, c: &ContainerSpec) -> Result<CreatedContainer, BackendError> {
        // Binds and named volumes alike are host directories, shared into the VM.
        let mut guest_shares = Vec::new();
        let mut guest_mounts = Vec::new();
        for (i, m) in c.mounts.iter().enumerate() {
            let (share, mount) = shares::share_mount(c, i, m)?;
            guest_shares.push(share);
            guest_mounts.push(mount);
        }
        let oci = spec::container_spec_with_mounts(c, &guest_mounts)?;
        let machine = self.boot(c).await?;
        machine.keep_clock();
        let (links, endpoint) = match self.create_in_guest(&machine, c, &oci, guest_shares).await {
            Ok(created) => created,
            Err(e) => {
                machine.shutdown().await;
                return Err(e);
            }
        };
        let (mut listeners, ports) =
            match ports::publish(&machine, c, self.config.auto_forward).await {
                Ok(p) => p,
                Err(e) => {
                    self.networks.release(&c.id).await;
                    machine.shutdown().await;
                    return Err(e);
                }
            };
        let auto_ports = listeners.take_auto_ports();
        tracing::info!(
            container = c.short_id(),
            backend = machine.backend(),
            pid = machine.pid(),
            "container VM ready"
        );
        if let Some(old) = self
            .running
            .insert(&c.id, machine.clone(), oci, listeners, links)
        {
            old.shutdown().await;
        }
        Ok(guest::created(machine, &c.id, ports, auto_ports, endpoint))
    }

    async fn create_exec(
        &self,
        c: &ContainerSpec,
        exec: &ExecSpec,
    ) -> Result<Arc<dyn ProcessHandle>, BackendError> {
        self.running.create_exec(c, exec).await
    }

    async fn reconnect(&self, _c: &ContainerSpec) -> Result<Reconnected, BackendError> {
        // Monitors die with the daemon that launched them (PR_SET_PDEATHSIG).
        Err(BackendError::Gone(
            "its VM stopped with the daemon that ran it".into(),
        ))
    }

    async fn release(&self, c: &ContainerSpec) {
        self.networks.release(&c.id).await;
        let Some(machine) = self.running.remove(&c.id).await else {
            return;
        };
        // The exit is recorded once the log is complete; the guest's shutdown (a clean
        // unmount of the data disk, seconds under TCG) goes on meanwhile.
        machine.drain_log(&c.id).await;
        let task = tokio::spawn({
            let machine = machine.clone();
            async move { machine.shutdown().await }
        });
        let old = self
            .stopping
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.id.clone(), Stopping { machine, task });
        if let Some(old) = old {
            old.machine.kill().await;
        }
    }

    async fn remove(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        self.release(c).await;
        // Its disks go with it: no need for a clean shutdown.
        if let Some(last) = self.take_stopping(&c.id) {
            last.machine.kill().await;
            let _ = last.task.await;
        }
        let dir = self.dir(&c.id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackendError::Failed(format!(
                "removing {}: {e}",
                dir.display()
            ))),
        }
    }

    async fn kill(&self, c: &ContainerSpec, signal: i32) -> Result<(), BackendError> {
        self.running.kill(&c.id, signal).await
    }

    async fn stats(&self, c: &ContainerSpec) -> Result<ResourceStats, BackendError> {
        self.running.stats(&c.id).await
    }

    async fn pids(&self, c: &ContainerSpec) -> Result<Vec<i32>, BackendError> {
        let top = self.running.top(&c.id).await?;
        Ok(top.into_iter().map(|p| p.pid).collect())
    }

    async fn top(&self, c: &ContainerSpec) -> Result<Option<Vec<super::TopProcess>>, BackendError> {
        Ok(Some(self.running.top(&c.id).await?))
    }

    async fn connect_network(
        &self,
        c: &ContainerSpec,
        network: &str,
        aliases: &[String],
    ) -> Result<NetworkEndpoint, BackendError> {
        let machine = self.running.machine(&c.id)?;
        let domain = user_networks::own_vm_domain(&c.id);
        let hosts_file = self.dir(&c.id).join("hosts");
        self.networks
            .connect(&machine, c, &domain, network, aliases, hosts_file)
            .await
    }

    async fn disconnect_network(
        &self,
        c: &ContainerSpec,
        network: &str,
    ) -> Result<(), BackendError> {
        let machine = self.running.machine(&c.id)?;
        self.networks.disconnect(&machine, c, network).await
    }

    async fn pause(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        self.running.freeze(&c.id, true).await
    }

    async fn unpause(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        self.running.freeze(&c.id, false).await
    }

    async fn update(
        &self,
        c: &ContainerSpec,
        changed: &crate::backend::Resources,
    ) -> Result<(), BackendError> {
        self.running.update(&c.id, changed).await
    }

    async fn writable_layer(
        &self,
        c: &ContainerSpec,
    ) -> Result<Option<super::WritableLayer>, BackendError> {
        let tmp = self.config.data_root.join("vm").join("tmp");
        if let Ok(machine) = self.running.machine(&c.id) {
            return writable::fetch(&machine, PathBuf::from("rw").join("upper"), &tmp)
                .await
                .map(Some);
        }
        // Its VM is gone, or shutting down: wait until it has let go of the disk.
        if let Some(last) = self.take_stopping(&c.id) {
            let _ = last.task.await;
        }
        let disk = self.data_disk(&c.id);
        tokio::task::spawn_blocking(move || writable::mount_stopped(&disk, "rw/upper", &tmp))
            .await
            .map_err(|e| BackendError::Failed(format!("mounting the data disk: {e}")))?
            .map(Some)
    }

    async fn path_stat(&self, c: &ContainerSpec, path: &str) -> Result<PathStat, BackendError> {
        files::path_stat(self.files_at(c).await?, c, path).await
    }

    async fn archive(
        &self,
        c: &ContainerSpec,
        path: &str,
    ) -> Result<(PathStat, ByteStream), BackendError> {
        files::archive(self.files_at(c).await?, c, path).await
    }

    async fn extract(
        &self,
        c: &ContainerSpec,
        path: &str,
        opts: ExtractOptions,
        tar: ByteStream,
    ) -> Result<(), BackendError> {
        files::extract(self.files_at(c).await?, c, path, opts, tar).await
    }

    async fn export(&self, c: &ContainerSpec) -> Result<ByteStream, BackendError> {
        files::export(self.files_at(c).await?, c).await
    }

    async fn changes(&self, c: &ContainerSpec) -> Result<Vec<super::Change>, BackendError> {
        writable::changes(self.writable_layer(c).await?, c.layers.clone()).await
    }

    fn files(&self, c: &ContainerSpec) -> ContainerFiles {
        let mut data: BTreeMap<String, String> = BTreeMap::new();
        let disks: Vec<String> = c
            .layers
            .iter()
            .rev()
            .map(|l| self.layers.path_of(l).display().to_string())
            .collect();
        data.insert("LayerDisks".into(), disks.join(":"));
        data.insert(
            "DataDisk".into(),
            self.data_disk(&c.id).display().to_string(),
        );
        data.insert(
            "SerialLog".into(),
            self.serial_log(&c.id).display().to_string(),
        );
        data.insert("Vm".into(), format!("container-{}", c.short_id()));
        data.insert("VmBackend".into(), self.vm.name().to_string());
        if let Ok(m) = self.running.machine(&c.id) {
            data.insert("VmPid".into(), m.pid().to_string());
        }
        ContainerFiles {
            log: self.log_path(&c.id),
            hosts: None,
            hostname: None,
            resolv_conf: None,
            sandbox: None,
            writable_layer: None,
            graph_driver: Some(GraphDriver {
                name: "vmrun-vm".into(),
                data,
            }),
        }
    }
}
