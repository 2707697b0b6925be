//! The shared VM (`vmrund --mode vm`, or `--isolation shared-vm`): one Linux VM that runs
//! every such container, as Docker Desktop, OrbStack and Colima do.
//!
//! The VM boots on the first container that needs it (or `vmrun vm start`), sized by the
//! daemon's config, with one disk: a sparse ext4 data disk under
//! `<data-root>/vm/shared/` that outlives the VM. On it live
//! - image layers, as the same ext4 images the per-container mode attaches as disks
//!   (built once per layer on the host, [`LayerDisks`]), copied into the guest once per
//!   layer (`layers/<key>.ext4`, streamed over vsock) and mounted through loop devices:
//!   a second run of an image copies nothing, and a layer two images share is stored once;
//! - each container's writable layer (`containers/<id>`), so a stopped container keeps its
//!   files across a VM restart and a daemon restart;
//! - named volumes (`volumes/<name>/_data`, bind-mounted into the containers that use
//!   them), removed with `docker volume rm`. Host directories (`-v /path:…`) need the file
//!   share of the next issue and are refused with a message.
//!
//! When the VM stops (asked, crashed, or its agent died) its containers exit with the
//! reason, and the next container that needs it boots it again. Containers removed while
//! the VM is down have their writable layers removed at its next boot. Its containers are
//! served by [`super::shared_backend::SharedVmBackend`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vmrun_agent_client::ClientError;
use vmrun_agent_protocol::{ErrorKind, DATA_DIR};
use vmrun_vm::{DiskSpec, VmBackend, VmSpec};

use super::assets::GuestAssets;
use super::layers::{self, LayerDisks};
use super::machine::Machine;
use crate::backend::BackendError;
use crate::config::{DaemonConfig, SharedVmSize};

/// File (under the shared VM's directory) listing data (relative paths: writable layers,
/// volumes) to remove at the next boot.
const PENDING_REMOVALS: &str = "pending-removals";

/// What `vmrun vm status` shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SharedVmStatus {
    /// `running` or `stopped`.
    pub state: String,
    /// The monitor (`vmm`, `qemu`).
    pub backend: String,
    /// `kvm` or `tcg` (QEMU without KVM).
    pub accelerator: String,
    /// vCPUs.
    pub cpus: u8,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Data disk size in GiB.
    pub disk_gib: u32,
    /// The data disk on the host.
    pub data_disk: String,
    /// Seconds since the VM booted (0 when stopped).
    pub uptime_seconds: u64,
    /// Containers running in it.
    pub containers: usize,
    /// The monitor's pid (0 when stopped).
    pub pid: u32,
    /// The guest kernel's release, from the agent.
    pub kernel: String,
    /// The agent's resident memory in KiB (0 when stopped).
    pub agent_rss_kib: u64,
    /// Why it last stopped, if it did.
    pub last_exit: Option<String>,
}

/// The one shared VM of a daemon, booted on demand.
pub struct SharedVm {
    pub(super) vm: Arc<dyn VmBackend>,
    assets: GuestAssets,
    size: SharedVmSize,
    accelerator: String,
    dir: PathBuf,
    vsock: PathBuf,
    layers: Arc<LayerDisks>,
    /// The image store's unpacked layers (`<data-root>/images/layers`).
    store_layers: PathBuf,
    /// Deadline of one agent call.
    agent_timeout: Duration,
    machine: tokio::sync::Mutex<Option<Arc<Machine>>>,
    last_exit: std::sync::Mutex<Option<String>>,
}

impl SharedVm {
    /// The shared VM of a daemon with `config`, booted through `vm` (`accelerator` names
    /// how that monitor runs here).
    pub fn new(
        config: &DaemonConfig,
        vm: Arc<dyn VmBackend>,
        accelerator: &str,
        assets: GuestAssets,
        layers: Arc<LayerDisks>,
    ) -> Self {
        SharedVm {
            vm,
            assets,
            size: config.shared_vm,
            accelerator: accelerator.to_string(),
            dir: config.data_root.join("vm").join("shared"),
            vsock: config.exec_root.join("vm").join("shared.vsock"),
            layers,
            store_layers: config.data_root.join("images").join("layers"),
            agent_timeout: config.vm_agent_timeout,
            machine: tokio::sync::Mutex::new(None),
            last_exit: std::sync::Mutex::new(None),
        }
    }

    pub(super) fn data_disk(&self) -> PathBuf {
        self.dir.join("data.ext4")
    }

    pub(super) fn serial_log(&self) -> PathBuf {
        self.dir.join("serial.log")
    }

    /// The running VM, if there is one (a VM that stopped counts as none).
    pub async fn running(&self) -> Option<Arc<Machine>> {
        let mut slot = self.machine.lock().await;
        self.forget_if_stopped(&mut slot);
        slot.clone()
    }

    fn forget_if_stopped(&self, slot: &mut Option<Arc<Machine>>) {
        if let Some(why) = slot.as_ref().and_then(|m| m.exit_reason()) {
            tracing::warn!("the shared VM stopped: {why}");
            *self.last_exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            *slot = None;
        }
    }

    /// The running VM, booted now if there is none.
    pub async fn ensure(&self) -> Result<Arc<Machine>, BackendError> {
        let mut slot = self.machine.lock().await;
        self.forget_if_stopped(&mut slot);
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let machine = Arc::new(self.boot().await?);
        machine.keep_clock();
        *slot = Some(machine.clone());
        Ok(machine)
    }

    async fn boot(&self) -> Result<Machine, BackendError> {
        let failed =
            |what: String| move |e: std::io::Error| BackendError::Failed(format!("{what}: {e}"));
        for d in [Some(self.dir.as_path()), self.vsock.parent()]
            .into_iter()
            .flatten()
        {
            std::fs::create_dir_all(d).map_err(failed(format!("creating {}", d.display())))?;
        }
        let disk = self.data_disk();
        let bytes = u64::from(self.size.disk_gib) << 30;
        let made = disk.clone();
        tokio::task::spawn_blocking(move || layers::ensure_data_disk(&made, bytes))
            .await
            .map_err(|e| BackendError::Failed(format!("making the data disk panicked: {e}")))?
            .map_err(|e| BackendError::Failed(format!("making the shared VM's data disk: {e}")))?;
        match std::fs::remove_file(self.serial_log()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(failed(format!("removing {}", self.serial_log().display()))(
                    e,
                ))
            }
        }
        let mut spec = VmSpec::new(&self.assets.kernel, &self.vsock);
        spec.initrd = Some(self.assets.initrd.clone());
        spec.vcpus = self.size.cpus;
        spec.memory_mib = self.size.memory_mib;
        spec.disks = vec![DiskSpec {
            path: disk,
            read_only: false,
        }];
        spec.serial_log = Some(self.serial_log());
        let machine = Machine::boot(self.vm.clone(), spec, self.agent_timeout).await?;
        let mounted = machine
            .call(
                "mounting the data disk",
                machine.agent().mount_data_disk("/dev/vda"),
            )
            .await;
        if let Err(e) = mounted {
            machine.shutdown().await;
            return Err(e);
        }
        self.remove_pending(&machine).await;
        self.prune_guest_layers(&machine).await;
        tracing::info!(
            backend = machine.backend(),
            pid = machine.pid(),
            cpus = self.size.cpus,
            memory_mib = self.size.memory_mib,
            "shared VM ready"
        );
        Ok(machine)
    }

    /// Removes what was removed while the VM was down (writable layers, volumes).
    async fn remove_pending(&self, machine: &Machine) {
        let list = self.dir.join(PENDING_REMOVALS);
        let Ok(text) = std::fs::read_to_string(&list) else {
            return;
        };
        let paths = text
            .lines()
            .map(Path::new)
            .filter(|p| vmrun_agent_protocol::data_path(p).is_some());
        for path in paths {
            if let Err(e) = machine
                .call("removing data", machine.agent().remove_data(path))
                .await
            {
                tracing::warn!(path = %path.display(), "{e}");
                return;
            }
        }
        if let Err(e) = std::fs::remove_file(&list) {
            tracing::warn!("removing {}: {e}", list.display());
        }
    }

    /// Removes the layer images no image or container holds any more (the store deleted
    /// their layers): from the host's layer-disk cache, and from the data disk when the VM
    /// runs (else at its next boot).
    pub async fn prune_layers(&self) {
        let (layers, store) = (self.layers.clone(), self.store_layers.clone());
        let removed =
            tokio::task::spawn_blocking(move || layers.prune(&|key| layers::in_store(&store, key)))
                .await
                .unwrap_or_default();
        if !removed.is_empty() {
            tracing::info!(layers = ?removed, "removed unused layer disks");
        }
        if let Some(machine) = self.running().await {
            self.prune_guest_layers(&machine).await;
        }
    }

    /// Unmounts and removes the layer images on the data disk that the store no longer has.
    async fn prune_guest_layers(&self, machine: &Machine) {
        let names = match machine
            .call("listing layers", machine.agent().list_data("layers"))
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("listing the shared VM's layers: {e}");
                return;
            }
        };
        for name in names {
            let Some(key) = name.strip_suffix(".ext4") else {
                continue;
            };
            if layers::in_store(&self.store_layers, key) {
                continue;
            }
            match machine
                .call("removing a layer", machine.agent().remove_layer(key))
                .await
            {
                Ok(()) => tracing::info!(layer = key, "removed an unused layer from the shared VM"),
                Err(e) => tracing::warn!(layer = key, "keeping a layer in the shared VM: {e}"),
            }
        }
    }

    /// Removes `path` (relative to the data directory) from the data disk now, or at the
    /// next boot.
    pub(super) async fn remove_data(&self, path: &Path) -> Result<(), BackendError> {
        if let Some(machine) = self.running().await {
            return machine
                .call("removing data in the VM", machine.agent().remove_data(path))
                .await;
        }
        if !self.data_disk().exists() {
            return Ok(());
        }
        use std::io::Write;
        let list = self.dir.join(PENDING_REMOVALS);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&list)
            .and_then(|mut f| writeln!(f, "{}", path.display()))
            .map_err(|e| BackendError::Failed(format!("writing {}: {e}", list.display())))
    }

    /// Layer `layer` mounted in `machine`: copied onto the data disk first if it is not
    /// there yet. Returns the guest directory.
    pub(super) async fn mount_layer(
        &self,
        machine: &Machine,
        layer: &Path,
    ) -> Result<PathBuf, BackendError> {
        let key = layers::layer_key(layer);
        let relative = PathBuf::from("layers").join(format!("{key}.ext4"));
        let image = Path::new(DATA_DIR).join(&relative);
        match machine.agent().mount_layer(&image, &key).await {
            Ok((path, _)) => return Ok(path),
            Err(ClientError::Agent(e)) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(super::machine::agent_error("mounting a layer", e)),
        }
        let layers = self.layers.clone();
        let source = layer.to_owned();
        let host_image = tokio::task::spawn_blocking(move || layers.disk_for(&source))
            .await
            .map_err(|e| BackendError::Failed(format!("building a layer image panicked: {e}")))?
            .map_err(|e| BackendError::Failed(format!("building a layer image: {e}")))?;
        let mut file = tokio::fs::File::open(&host_image)
            .await
            .map_err(|e| BackendError::Failed(format!("opening {}: {e}", host_image.display())))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| BackendError::Failed(format!("reading {}: {e}", host_image.display())))?
            .len();
        tracing::info!(layer = %key, size, "copying a layer into the shared VM");
        // A layer's copy is bounded by its size, not by the usual call deadline.
        let copy_deadline = Duration::from_secs(60 + size / (1 << 20));
        machine
            .call_until(
                "copying a layer into the VM",
                Some(copy_deadline),
                machine.agent().put_file(&relative, size, &mut file),
            )
            .await?;
        let (path, _) = machine
            .call(
                "mounting a layer",
                machine.agent().mount_layer(&image, &key),
            )
            .await?;
        Ok(path)
    }

    /// Shuts the VM down cleanly (its containers must be stopped first); false when it was
    /// not running.
    pub async fn stop(&self) -> bool {
        let machine = self.machine.lock().await.take();
        match machine {
            Some(m) => {
                m.shutdown().await;
                *self.last_exit.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some("stopped by request".into());
                true
            }
            None => false,
        }
    }

    /// Where the VM stands; `containers` is how many run in it.
    pub async fn status(&self, containers: usize) -> SharedVmStatus {
        let machine = self.running().await;
        let kernel = machine
            .as_ref()
            .map(|m| m.agent().welcome().kernel_release.clone())
            .unwrap_or_default();
        let agent_rss_kib = match &machine {
            Some(m) => m
                .call("asking the agent's version", m.agent().version())
                .await
                .map(|v| v.agent_rss_kib)
                .unwrap_or(0),
            None => 0,
        };
        SharedVmStatus {
            state: if machine.is_some() {
                "running"
            } else {
                "stopped"
            }
            .into(),
            backend: self.vm.name().to_string(),
            accelerator: self.accelerator.clone(),
            cpus: self.size.cpus,
            memory_mib: self.size.memory_mib,
            disk_gib: self.size.disk_gib,
            data_disk: self.data_disk().display().to_string(),
            uptime_seconds: machine.as_ref().map_or(0, |m| m.uptime().as_secs()),
            containers,
            pid: machine.as_ref().map_or(0, |m| m.pid()),
            kernel,
            agent_rss_kib,
            last_exit: self
                .last_exit
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
