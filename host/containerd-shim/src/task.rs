//! containerd's Task API (`containerd.task.v2.Task` over ttrpc) for the tasks of one
//! sandbox VM: create (rootfs mounted on the host and shared into the VM, container
//! created by the agent, stdio attached to containerd's FIFOs), start, wait, state, kill,
//! exec, resize, close-io, pids, pause/resume, delete, shutdown; events published as
//! the runc shim publishes them. The VM boots with the first task and shuts down when
//! the last one is deleted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::api;
use containerd_shim::asynchronous::io::Stdio;
use containerd_shim::asynchronous::ExitSignal;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskStart,
};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::protos::types::task::ProcessInfo;
use containerd_shim::{Task, TtrpcContext, TtrpcResult};
use vmrun_daemon::backend::vm::shares::ContainerShares;

use crate::events::{timestamp, Events};
use crate::process::{Process, Status};
use crate::sandbox::Sandbox;

/// One task (container): its bundle, init, execs and the share serving its rootfs.
struct Container {
    bundle: PathBuf,
    init: Arc<Process>,
    execs: HashMap<String, Arc<Process>>,
    _rootfs_share: ContainerShares,
}

/// The task service of one shim.
pub struct TaskService {
    events: Arc<Events>,
    exit: Arc<ExitSignal>,
    sandbox: tokio::sync::Mutex<Option<Arc<Sandbox>>>,
    containers: std::sync::Mutex<HashMap<String, Container>>,
}

fn status(code: Code, msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

fn failed(e: anyhow::Error) -> ttrpc::Error {
    status(Code::INTERNAL, format!("{e:#}"))
}

/// The agent's id of exec `exec_id` of `container` (one id space per VM).
fn exec_agent_id(container: &str, exec_id: &str) -> String {
    format!("{container}.{exec_id}")
}

impl TaskService {
    /// A service publishing through `events`, ending the shim through `exit`.
    pub fn new(events: Events, exit: Arc<ExitSignal>) -> Self {
        TaskService {
            events: Arc::new(events),
            exit,
            sandbox: tokio::sync::Mutex::new(None),
            containers: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Process `exec_id` (empty: the init) of task `id`.
    fn process(&self, id: &str, exec_id: &str) -> TtrpcResult<Arc<Process>> {
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

    async fn sandbox(&self) -> TtrpcResult<Arc<Sandbox>> {
        self.sandbox
            .lock()
            .await
            .clone()
            .ok_or_else(|| status(Code::FAILED_PRECONDITION, "the sandbox VM is not running"))
    }

    /// The sandbox VM, booted now for the first task.
    async fn sandbox_for(&self, id: &str, bundle: &std::path::Path) -> TtrpcResult<Arc<Sandbox>> {
        let mut slot = self.sandbox.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(Sandbox::boot(id, bundle).await.map_err(failed)?);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Shuts the VM down when no task is left in it.
    async fn shutdown_if_empty(&self) {
        if !self.lock().is_empty() {
            return;
        }
        let sandbox = self.sandbox.lock().await.take();
        if let Some(s) = sandbox {
            s.shutdown().await;
        }
    }

    async fn create_task(&self, req: &api::CreateTaskRequest) -> anyhow::Result<Container> {
        use anyhow::Context as _;
        let bundle = PathBuf::from(&req.bundle);
        let spec: serde_json::Value = serde_json::from_slice(
            &std::fs::read(bundle.join("config.json")).context("reading config.json")?,
        )
        .context("parsing config.json")?;
        let tty = req.terminal;
        let rootfs = crate::rootfs::mount(&bundle, &req.rootfs)?;
        let result = async {
            let sandbox = self
                .sandbox_for(&req.id, &bundle)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let share = sandbox
                .create_container(&req.id, spec, &rootfs, tty, !req.stdin.is_empty())
                .await?;
            let stdio = Stdio::new(&req.stdin, &req.stdout, &req.stderr, tty);
            let init = Arc::new(Process::new(req.id.clone(), stdio, sandbox.pid()));
            init.attach(sandbox.machine()).await?;
            Ok::<_, anyhow::Error>(Container {
                bundle: bundle.clone(),
                init,
                execs: HashMap::new(),
                _rootfs_share: share,
            })
        }
        .await;
        if result.is_err() {
            let _ = crate::rootfs::unmount(&bundle);
        }
        result
    }

    /// Waits for `process` in the guest, records its exit and publishes it.
    fn watch(&self, sandbox: Arc<Sandbox>, container: String, process: Arc<Process>) {
        let events = self.events.clone();
        tokio::spawn(async move {
            let machine = sandbox.machine();
            let code = match machine
                .call_until("waiting", None, machine.agent().wait(&process.agent_id))
                .await
            {
                Ok(info) => u32::try_from(info.exit_code).unwrap_or(255),
                Err(e) => {
                    log::warn!("{}: {e}", process.agent_id);
                    255
                }
            };
            process.exited(code).await;
            let (code, at) = process.wait().await;
            let exec_id = if process.agent_id == container {
                container.clone()
            } else {
                process
                    .agent_id
                    .strip_prefix(&format!("{container}."))
                    .unwrap_or(&process.agent_id)
                    .to_string()
            };
            let event = TaskExit {
                container_id: container,
                id: exec_id,
                pid: process.pid,
                exit_status: code,
                exited_at: MessageField::some(timestamp(at)),
                ..Default::default()
            };
            events
                .publish(topics::TASK_EXIT_EVENT_TOPIC, Box::new(event))
                .await;
        });
    }
}

fn state_response(id: &str, exec_id: &str, bundle: &str, p: &Process) -> api::StateResponse {
    let mut resp = api::StateResponse {
        id: id.to_string(),
        exec_id: exec_id.to_string(),
        bundle: bundle.to_string(),
        pid: p.pid,
        stdin: p.stdio.stdin.clone(),
        stdout: p.stdio.stdout.clone(),
        stderr: p.stdio.stderr.clone(),
        terminal: p.stdio.terminal,
        ..Default::default()
    };
    match p.status() {
        Status::Created => resp.set_status(api::Status::CREATED),
        Status::Running => resp.set_status(api::Status::RUNNING),
        Status::Exited { code, at } => {
            resp.set_status(api::Status::STOPPED);
            resp.exit_status = code;
            resp.exited_at = MessageField::some(timestamp(at));
        }
    }
    resp
}

#[async_trait]
impl Task for TaskService {
    async fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        if self.lock().contains_key(&req.id) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("task {} exists", req.id),
            ));
        }
        let container = match self.create_task(&req).await {
            Ok(c) => c,
            Err(e) => {
                self.shutdown_if_empty().await;
                return Err(failed(e));
            }
        };
        let pid = container.init.pid;
        self.lock().insert(req.id.clone(), container);
        let event = TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(containerd_shim::protos::events::task::TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            }),
            pid,
            ..Default::default()
        };
        self.events
            .publish(topics::TASK_CREATE_EVENT_TOPIC, Box::new(event))
            .await;
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    async fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        let process = self.process(&req.id, &req.exec_id)?;
        if process.status() != Status::Created {
            return Err(status(
                Code::FAILED_PRECONDITION,
                "the process was started already",
            ));
        }
        let sandbox = self.sandbox().await?;
        let machine = sandbox.machine();
        machine
            .call("starting", machine.agent().start(&process.agent_id))
            .await
            .map_err(|e| failed(e.into()))?;
        process.started();
        self.watch(sandbox.clone(), req.id.clone(), process.clone());
        if req.exec_id.is_empty() {
            let event = TaskStart {
                container_id: req.id.clone(),
                pid: process.pid,
                ..Default::default()
            };
            self.events
                .publish(topics::TASK_START_EVENT_TOPIC, Box::new(event))
                .await;
        } else {
            let event = TaskExecStarted {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                pid: process.pid,
                ..Default::default()
            };
            self.events
                .publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, Box::new(event))
                .await;
        }
        Ok(api::StartResponse {
            pid: process.pid,
            ..Default::default()
        })
    }

    async fn wait(
        &self,
        _ctx: &TtrpcContext,
        req: api::WaitRequest,
    ) -> TtrpcResult<api::WaitResponse> {
        let process = self.process(&req.id, &req.exec_id)?;
        let (code, at) = process.wait().await;
        Ok(api::WaitResponse {
            exit_status: code,
            exited_at: MessageField::some(timestamp(at)),
            ..Default::default()
        })
    }

    async fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        let process = self.process(&req.id, &req.exec_id)?;
        let bundle = self
            .lock()
            .get(&req.id)
            .map(|c| c.bundle.display().to_string())
            .unwrap_or_default();
        Ok(state_response(&req.id, &req.exec_id, &bundle, &process))
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let process = self.process(&req.id, &req.exec_id)?;
        if matches!(process.status(), Status::Exited { .. }) {
            return Err(status(Code::NOT_FOUND, "process already finished"));
        }
        let signal = i32::try_from(req.signal)
            .map_err(|_| status(Code::INVALID_ARGUMENT, "bad signal number"))?;
        let sandbox = self.sandbox().await?;
        let machine = sandbox.machine();
        machine
            .call(
                "signalling",
                machine.agent().kill(&process.agent_id, signal),
            )
            .await
            .map_err(|e| failed(e.into()))?;
        Ok(api::Empty::new())
    }

    async fn exec(
        &self,
        _ctx: &TtrpcContext,
        req: api::ExecProcessRequest,
    ) -> TtrpcResult<api::Empty> {
        let process: serde_json::Value = serde_json::from_slice(&req.spec.value)
            .map_err(|e| status(Code::INVALID_ARGUMENT, format!("the exec's process: {e}")))?;
        {
            let containers = self.lock();
            let c = containers
                .get(&req.id)
                .ok_or_else(|| status(Code::NOT_FOUND, format!("task {} not found", req.id)))?;
            if c.execs.contains_key(&req.exec_id) {
                return Err(status(
                    Code::ALREADY_EXISTS,
                    format!("exec {} exists", req.exec_id),
                ));
            }
        }
        let sandbox = self.sandbox().await?;
        let agent_id = exec_agent_id(&req.id, &req.exec_id);
        sandbox
            .create_exec(&req.id, &agent_id, process, !req.stdin.is_empty())
            .await
            .map_err(failed)?;
        let stdio = Stdio::new(&req.stdin, &req.stdout, &req.stderr, req.terminal);
        let exec = Arc::new(Process::new(agent_id, stdio, sandbox.pid()));
        exec.attach(sandbox.machine()).await.map_err(failed)?;
        match self.lock().get_mut(&req.id) {
            Some(c) => c.execs.insert(req.exec_id.clone(), exec),
            None => return Err(status(Code::NOT_FOUND, format!("task {} is gone", req.id))),
        };
        let event = TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        };
        self.events
            .publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, Box::new(event))
            .await;
        Ok(api::Empty::new())
    }

    async fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> TtrpcResult<api::Empty> {
        let process = self.process(&req.id, &req.exec_id)?;
        let sandbox = self.sandbox().await?;
        let machine = sandbox.machine();
        let (h, w) = (
            u16::try_from(req.height).unwrap_or(u16::MAX),
            u16::try_from(req.width).unwrap_or(u16::MAX),
        );
        machine
            .call("resizing", machine.agent().resize(&process.agent_id, h, w))
            .await
            .map_err(|e| failed(e.into()))?;
        Ok(api::Empty::new())
    }

    async fn close_io(
        &self,
        _ctx: &TtrpcContext,
        req: api::CloseIORequest,
    ) -> TtrpcResult<api::Empty> {
        let process = self.process(&req.id, &req.exec_id)?;
        if req.stdin {
            process.close_input();
        }
        Ok(api::Empty::new())
    }

    async fn pids(
        &self,
        _ctx: &TtrpcContext,
        req: api::PidsRequest,
    ) -> TtrpcResult<api::PidsResponse> {
        self.process(&req.id, "")?;
        let sandbox = self.sandbox().await?;
        let machine = sandbox.machine();
        let listed = machine
            .call("listing processes", machine.agent().top(&req.id))
            .await
            .map_err(|e| failed(e.into()))?;
        let processes = listed
            .into_iter()
            .map(|p| ProcessInfo {
                pid: u32::try_from(p.pid).unwrap_or(0),
                ..Default::default()
            })
            .collect();
        Ok(api::PidsResponse {
            processes,
            ..Default::default()
        })
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        self.freeze(&req.id, true).await
    }

    async fn resume(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResumeRequest,
    ) -> TtrpcResult<api::Empty> {
        self.freeze(&req.id, false).await
    }

    async fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        let process = self.process(&req.id, &req.exec_id)?;
        let (code, at) = match process.status() {
            Status::Exited { code, at } => (code, at),
            Status::Created => {
                process.abort_io().await;
                (0, std::time::SystemTime::now())
            }
            Status::Running => {
                return Err(status(Code::FAILED_PRECONDITION, "the process is running"))
            }
        };
        let sandbox = self.sandbox().await.ok();
        if let Some(s) = &sandbox {
            let machine = s.machine();
            if let Err(e) = machine
                .call("deleting", machine.agent().delete(&process.agent_id, true))
                .await
            {
                log::debug!("{}: {e}", process.agent_id);
            }
        }
        if req.exec_id.is_empty() {
            let removed = self.lock().remove(&req.id);
            if let Some(c) = removed {
                drop(c._rootfs_share);
                if let Err(e) = crate::rootfs::unmount(&c.bundle) {
                    log::warn!("{e:#}");
                }
            }
            let event = TaskDelete {
                container_id: req.id.clone(),
                pid: process.pid,
                exit_status: code,
                exited_at: MessageField::some(timestamp(at)),
                ..Default::default()
            };
            self.events
                .publish(topics::TASK_DELETE_EVENT_TOPIC, Box::new(event))
                .await;
            self.shutdown_if_empty().await;
        } else if let Some(c) = self.lock().get_mut(&req.id) {
            c.execs.remove(&req.exec_id);
        }
        Ok(api::DeleteResponse {
            pid: process.pid,
            exit_status: code,
            exited_at: MessageField::some(timestamp(at)),
            ..Default::default()
        })
    }

    async fn shutdown(
        &self,
        _ctx: &TtrpcContext,
        _req: api::ShutdownRequest,
    ) -> TtrpcResult<api::Empty> {
        if !self.lock().is_empty() {
            return Ok(api::Empty::new());
        }
        self.shutdown_if_empty().await;
        self.exit.signal();
        Ok(api::Empty::new())
    }

    async fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self.process(&req.id, "").map(|p| p.pid).unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }
}

impl TaskService {
    async fn freeze(&self, id: &str, frozen: bool) -> TtrpcResult<api::Empty> {
        self.process(id, "")?;
        let sandbox = self.sandbox().await?;
        let machine = sandbox.machine();
        machine
            .call("freezing", machine.agent().freeze(id, frozen))
            .await
            .map_err(|e| failed(e.into()))?;
        Ok(api::Empty::new())
    }
}
