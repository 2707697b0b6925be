//! The container lifecycle: state transitions, persistence, events, and the processes
//! that back them.

mod create;
pub mod events;
mod exec;
mod lifecycle;
pub mod logs;
mod names;
pub mod procfs;
mod stats;
pub mod volumes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::sync::oneshot;
use vmrun_images::ImageStore;
use vmrun_network::NetworkManager;

use crate::backend::native::NativeBackend;
use crate::backend::{AttachIo, AttachOptions, ContainerBackend, ProcessHandle};
use crate::config::DaemonConfig;
use crate::error::ApiError;
use crate::state::{ContainerStore, StoreError};

pub use create::CreateRequest;
pub use events::{Event, EventBus};
pub use exec::ExecRecord;
pub use lifecycle::{parse_signal, WaitCondition};
pub use names::validate as validate_name;

/// An attach request waiting for its container to start.
struct PendingAttach {
    opts: AttachOptions,
    reply: oneshot::Sender<Result<Box<dyn AttachIo>, ApiError>>,
}

/// The daemon's core: every API handler is a thin call into this.
pub struct Engine {
    /// Paths.
    pub config: DaemonConfig,
    /// Container records.
    pub store: ContainerStore,
    /// Images.
    pub images: Arc<ImageStore>,
    /// Networks.
    pub network: Arc<NetworkManager>,
    /// Named volumes.
    pub volumes: volumes::VolumeStore,
    /// Event stream.
    pub events: EventBus,
    /// The VM backend for isolated containers, or why there is none.
    pub vm: crate::vm::VmSupport,
    backend: Arc<dyn ContainerBackend>,
    processes: Mutex<HashMap<String, Arc<dyn ProcessHandle>>>,
    pending_attach: Mutex<HashMap<String, Vec<PendingAttach>>>,
    execs: Mutex<HashMap<String, ExecRecord>>,
    op_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Engine {
    /// Open every store under the data root and pick up containers that ran before.
    pub async fn open(config: DaemonConfig) -> anyhow::Result<Self> {
        // First: a VM backend the host cannot run stops the daemon before it touches anything.
        let vm = crate::vm::VmSupport::detect(config.vm_backend, config.vmm_binary.clone())
            .context("--vm-backend")?;
        for dir in [&config.data_root, &config.exec_root] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let store = ContainerStore::open(&config.data_root.join("containers"))?;
        let images = ImageStore::open(&config.data_root.join("images"))
            .context("opening the image store")?;
        hold_container_layers(&store, &images)?;
        let mut net_config = vmrun_network::ManagerConfig::new(
            &config.data_root.join("network"),
            &config.exec_root.join("netns"),
        );
        if let Some(b) = &config.bridge {
            net_config.default_bridge = b.clone();
        }
        net_config.default_subnet = config.bridge_subnet;
        let network = tokio::task::spawn_blocking(move || NetworkManager::open_with(net_config))
            .await
            .context("network setup panicked")?
            .context("opening the network manager")?;
        let network = Arc::new(network);
        let volumes = volumes::VolumeStore::open(&config.data_root.join("volumes"))?;
        let backend = Arc::new(NativeBackend::new(config.clone(), network.clone()));
        let engine = Engine {
            config,
            store,
            images: Arc::new(images),
            network,
            volumes,
            events: EventBus::new(),
            vm,
            backend,
            processes: Mutex::new(HashMap::new()),
            pending_attach: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            op_locks: Mutex::new(HashMap::new()),
        };
        Ok(engine)
    }

    /// Look a container up by id, prefix or name.
    pub fn container(&self, key: &str) -> Result<crate::state::ContainerRecord, ApiError> {
        self.store.resolve(key).map_err(store_error)
    }

    /// Serialise operations on one container (start against stop, remove against start).
    async fn lock_container(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.op_locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(id.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Every container as image removal needs to know it.
    pub fn container_uses(&self) -> Vec<vmrun_images::ContainerUse> {
        self.store
            .list()
            .into_iter()
            .map(|c| vmrun_images::ContainerUse {
                running: c.is_running(),
                id: c.id,
                image_id: c.image_id,
            })
            .collect()
    }

    fn process(&self, id: &str) -> Option<Arc<dyn ProcessHandle>> {
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
}

/// Makes the image store's layer holds match the containers: holds of containers removed
/// while the daemon was down go, containers from before holds existed get one.
fn hold_container_layers(store: &ContainerStore, images: &ImageStore) -> anyhow::Result<()> {
    let containers = store.list();
    let live: std::collections::HashSet<String> = containers.iter().map(|c| c.id.clone()).collect();
    images
        .retain_holders(&live)
        .context("releasing image layers of removed containers")?;
    for c in &containers {
        if let Err(e) = images.hold(&c.id, &c.image_id) {
            tracing::debug!(container = %c.id, error = %e, "no image to hold for the container");
        }
    }
    Ok(())
}

/// Map a store error to the API.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(k) => ApiError::no_such_container(&k),
        StoreError::Ambiguous(_) => ApiError::bad_request(e.to_string()),
        StoreError::NameInUse { .. } => ApiError::conflict(e.to_string()),
        StoreError::Io { .. } => ApiError::internal(e.to_string()),
    }
}

/// Map a backend error to the API.
pub fn backend_error(e: crate::backend::BackendError) -> ApiError {
    use crate::backend::BackendError as B;
    match e {
        B::NotFound(m) | B::PermissionDenied(m) => ApiError::bad_request(m),
        B::BadRequest(m) => ApiError::bad_request(m),
        B::Gone(m) => ApiError::conflict(m),
        B::Failed(m) => ApiError::internal(m),
    }
}

/// A new 64-hex-digit id (containers, execs), as dockerd makes them.
fn new_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}
