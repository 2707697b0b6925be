//! The container lifecycle: state transitions, persistence, events, and the processes
//! that back them.
//!
//! The engine knows backends only as `Arc<dyn ContainerBackend>` in a [`Backends`]
//! registry and picks one per container from its record's isolation; it tells a backend
//! about a container with a [`ContainerSpec`] built from the record. Its errors are
//! [`EngineError`]s; what HTTP status each becomes is the API's business.

mod auto_ports;
mod control;
mod create;
mod error;
pub mod events;
mod exec;
mod files;
pub mod health;
mod isolation;
mod lifecycle;
mod log_follow;
pub mod log_opts;
mod log_tail;
pub mod logs;
mod names;
pub mod networks;
pub mod procfs;
pub mod prune;
pub mod restart;
mod shared_vm;
mod spec;
mod stats;
pub mod volumes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use vmrun_images::ImageStore;
use vmrun_network::NetworkManager;

use crate::backend::{
    AttachIo, AttachOptions, Backends, ContainerBackend, ContainerFiles, ContainerSpec,
    ProcessHandle,
};
use crate::config::DaemonConfig;
use crate::state::{ContainerRecord, ContainerStore};

pub use control::UpdateRequest;
pub use create::CreateRequest;
pub use error::{EngineError, EngineResult};
pub use events::{Event, EventBus};
pub use exec::ExecRecord;
pub use isolation::requested_isolation;
pub use lifecycle::{parse_signal, WaitCondition};
pub use names::validate as validate_name;
pub use spec::{extra_hosts, parse_port_key};

/// An attach request waiting for its container to start.
struct PendingAttach {
    opts: AttachOptions,
    reply: oneshot::Sender<Result<Box<dyn AttachIo>, EngineError>>,
}

/// What an engine is made of, opened by the daemon's start-up (or a test).
pub struct EngineParts {
    /// Paths.
    pub config: DaemonConfig,
    /// Images.
    pub images: Arc<ImageStore>,
    /// Networks; `None` only in tests, where the predefined networks are assumed.
    pub network: Option<Arc<NetworkManager>>,
    /// The VM backend for isolated containers, or why there is none.
    pub vm: crate::vm::VmSupport,
    /// Where containers run, by isolation.
    pub backends: Backends,
    /// The shared VM, where the host can run one.
    pub shared_vm: Option<Arc<dyn crate::backend::SharedVmControl>>,
}

/// The daemon's core: every API handler is a thin call into this.
pub struct Engine {
    /// Paths.
    pub config: DaemonConfig,
    /// Container records.
    pub store: ContainerStore,
    /// Images.
    pub images: Arc<ImageStore>,
    /// Named volumes.
    pub volumes: volumes::VolumeStore,
    /// Event stream.
    pub events: EventBus,
    /// The VM backend for isolated containers, or why there is none.
    pub vm: crate::vm::VmSupport,
    network: Option<Arc<NetworkManager>>,
    backends: Backends,
    shared_vm: Option<Arc<dyn crate::backend::SharedVmControl>>,
    processes: Mutex<HashMap<String, Arc<dyn ProcessHandle>>>,
    pending_attach: Mutex<HashMap<String, Vec<PendingAttach>>>,
    execs: Mutex<HashMap<String, ExecRecord>>,
    op_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    restarts: restart::Restarts,
}

impl Engine {
    /// An engine over the container records and volumes under the data root. Call
    /// [`Engine::recover`] next to pick up containers that ran before.
    pub fn new(parts: EngineParts) -> Result<Self, EngineError> {
        let config = parts.config;
        let store = ContainerStore::open(&config.data_root.join("containers"))?;
        hold_container_layers(&store, &parts.images)?;
        let volumes = volumes::VolumeStore::open(&config.data_root.join("volumes"))?;
        Ok(Engine {
            config,
            store,
            images: parts.images,
            volumes,
            events: EventBus::new(),
            vm: parts.vm,
            network: parts.network,
            backends: parts.backends,
            shared_vm: parts.shared_vm,
            processes: Mutex::new(HashMap::new()),
            pending_attach: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            op_locks: Mutex::new(HashMap::new()),
            restarts: restart::Restarts::default(),
        })
    }

    /// Where containers that ask for no isolation run: the daemon's mode.
    pub fn default_isolation(&self) -> crate::backend::Isolation {
        match self.config.mode {
            crate::config::DaemonMode::Native => crate::backend::Isolation::Native,
            crate::config::DaemonMode::Vm => crate::backend::Isolation::SharedVm,
        }
    }

    /// The network manager.
    pub fn network(&self) -> Result<&Arc<NetworkManager>, EngineError> {
        self.network
            .as_ref()
            .ok_or_else(|| EngineError::internal("this daemon has no network manager"))
    }

    /// Look a container up by id, prefix or name.
    pub fn container(&self, key: &str) -> Result<ContainerRecord, EngineError> {
        Ok(self.store.resolve(key)?)
    }

    /// The backend of a container and what it is told about the container.
    fn backend_of(
        &self,
        rec: &ContainerRecord,
    ) -> Result<(Arc<dyn ContainerBackend>, ContainerSpec), EngineError> {
        let backend = self.backends.get(rec.isolation)?.clone();
        Ok((backend, spec::container_spec(rec)?))
    }

    /// Where a container's files are on this host (for inspect, commit, disk usage).
    pub fn container_files(&self, rec: &ContainerRecord) -> Result<ContainerFiles, EngineError> {
        let (backend, spec) = self.backend_of(rec)?;
        Ok(backend.files(&spec))
    }

    /// The container's writable layer in overlayfs form on this host (a copy for a
    /// container in a VM), for `commit` and build steps.
    pub async fn writable_layer(
        &self,
        rec: &ContainerRecord,
    ) -> Result<Option<crate::backend::WritableLayer>, EngineError> {
        let (backend, spec) = self.backend_of(rec)?;
        Ok(backend.writable_layer(&spec).await?)
    }

    /// Serialise operations on one container (start against stop, remove against start).
    /// Locks nobody holds or waits for are dropped from the map on the way.
    async fn lock_container(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.op_locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.retain(|key, lock| key == id || Arc::strong_count(lock) > 1);
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
fn hold_container_layers(store: &ContainerStore, images: &ImageStore) -> Result<(), EngineError> {
    let containers = store.list();
    let live: std::collections::HashSet<String> = containers.iter().map(|c| c.id.clone()).collect();
    images.retain_holders(&live).map_err(|e| {
        EngineError::internal(format!("releasing image layers of removed containers: {e}"))
    })?;
    for c in &containers {
        if let Err(e) = images.hold(&c.id, &c.image_id) {
            tracing::debug!(container = %c.id, error = %e, "no image to hold for the container");
        }
    }
    Ok(())
}

/// A new 64-hex-digit id (containers, execs), as dockerd makes them.
fn new_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}
