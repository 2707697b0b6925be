//! The tasks of one shim: each container with its init and execs, the sandbox (a VM, or
//! the agent on the host: [`Runner`]) started for the first task and ended after the
//! last, and the lookups the Task API ([`crate::task`]) makes. Exits are watched in
//! [`crate::exits`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use containerd_shim::api;
use containerd_shim::asynchronous::io::Stdio;
use containerd_shim::asynchronous::ExitSignal;
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::TtrpcResult;
use vmrun_daemon::backend::vm::shares::ContainerShares;

use crate::events::Events;
use crate::isolation::Isolation;
use crate::process::Process;
use crate::runner::Runner;

/// One task (container): its bundle, init, execs and the share serving its rootfs.
pub struct Container {
    pub bundle: PathBuf,
    pub init: Arc<Process>,
    pub execs: HashMap<String, Arc<Process>>,
    pub rootfs_share: ContainerShares,
}

/// The task service of one shim.
pub struct TaskService {
    pub(crate) events: Arc<Events>,
    pub(crate) exit: Arc<ExitSignal>,
    isolation: Isolation,
    sandbox: tokio::sync::Mutex<Option<Arc<Runner>>>,
    containers: std::sync::Mutex<HashMap<String, Container>>,
}

/// A ttrpc error with `code`.
pub fn status(code: Code, msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

/// An internal error.
pub fn failed(e: anyhow::Error) -> ttrpc::Error {
    status(Code::INTERNAL, format!("{e:#}"))
}

/// The agent's id of exec `exec_id` of `container` (one id space per VM).
pub fn exec_agent_id(container: &str, exec_id: &str) -> String {
    crate::sandbox::exec_agent_id(container, exec_id)
}

impl TaskService {
    /// A service running its tasks as `isolation` says, publishing through `events`,
    /// ending the shim through `exit`.
    pub fn new(isolation: Isolation, events: Events, exit: Arc<ExitSignal>) -> Self {
        TaskService {
            events: Arc::new(events),
            exit,
            isolation,
            sandbox: tokio::sync::Mutex::new(None),
            containers: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The tasks.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Process `exec_id` (empty: the init) of task `id`.
    pub fn process(&self, id: &str, exec_id: &str) -> TtrpcResult<Arc<Process>> {
        let containers = self.lock();
        let c = containers
            .get(id)
            .ok_or_else(|| status(Code::NOT_FOUND, format!("task {id} not found")))?;
        if exec_id.is_empty() {
            return Ok(c.init.clone());
        }
        c.execs
            .get(exec_id)
            .cloned()
            .ok_or_else(|| status(Code::NOT_FOUND, format!("exec {exec_id} of {id} not found")))
    }

    /// The execs of task `id` still running.
    pub fn running_execs(&self, id: &str) -> Vec<Arc<Process>> {
        self.lock()
            .get(id)
            .map(|c| {
                c.execs
                    .values()
                    .filter(|p| p.status() == crate::process::Status::Running)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The running sandbox.
    pub async fn sandbox(&self) -> TtrpcResult<Arc<Runner>> {
        self.sandbox
            .lock()
            .await
            .clone()
            .ok_or_else(|| status(Code::FAILED_PRECONDITION, "the sandbox is not running"))
    }

    /// The sandbox, started now for the first task.
    async fn sandbox_for(&self, id: &str, bundle: &Path) -> anyhow::Result<Arc<Runner>> {
        let mut slot = self.sandbox.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(Runner::start(self.isolation, id, bundle).await?);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Ends the sandbox when no task is left in it.
    pub async fn shutdown_if_empty(&self) {
        if !self.lock().is_empty() {
            return;
        }
        let sandbox = self.sandbox.lock().await.take();
        if let Some(s) = sandbox {
            s.shutdown().await;
        }
    }

    /// Creates task `req.id`: its rootfs mounted and shared, its container in the
    /// sandbox, its stdio attached.
    pub async fn create_task(&self, req: &api::CreateTaskRequest) -> anyhow::Result<Container> {
        let bundle = PathBuf::from(&req.bundle);
        let spec: serde_json::Value = serde_json::from_slice(
            &std::fs::read(bundle.join("config.json")).context("reading config.json")?,
        )
        .context("parsing config.json")?;
        let tty = req.terminal;
        let rootfs = crate::rootfs::mount(&bundle, &req.rootfs)?;
        let result = async {
            let sandbox = self.sandbox_for(&req.id, &bundle).await?;
            let (share, pid) = sandbox
                .create_container(&req.id, spec, &rootfs, tty, !req.stdin.is_empty())
                .await?;
            let stdio = Stdio::new(&req.stdin, &req.stdout, &req.stderr, tty);
            let init = Arc::new(Process::new(req.id.clone(), stdio, sandbox.pid(pid)));
            init.attach(&sandbox).await?;
            Ok::<_, anyhow::Error>(Container {
                bundle: bundle.clone(),
                init,
                execs: HashMap::new(),
                rootfs_share: share,
            })
        }
        .await;
        if result.is_err() {
            let _ = crate::rootfs::unmount(&bundle);
        }
        result
    }
}
