//! containerd's Task API (`containerd.task.v2.Task` over ttrpc) for the tasks of one
//! sandbox VM: create, start, wait, state, kill, exec, resize, close-io, pids,
//! pause/resume, stats, update, delete, shutdown, connect; OOM kills as `/tasks/oom`; events published as the runc shim publishes
//! them. What a task is and where it runs is [`crate::tasks`]; exits are
//! [`crate::exits`].

use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::api;
use containerd_shim::asynchronous::io::Stdio;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskStart,
};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::Code;
use containerd_shim::protos::types::task::ProcessInfo;
use containerd_shim::{Task, TtrpcContext, TtrpcResult};

use crate::events::timestamp;
use crate::process::{Process, Status};
use crate::tasks::{exec_agent_id, failed, status, TaskService};

fn state_response(id: &str, exec_id: &str, bundle: &str, p: &Process) -> api::StateResponse {
    let mut resp = api::StateResponse {
        id: id.to_string(),
        exec_id: exec_id.to_string(),
        bundle: bundle.to_string(),
        pid: p.pid(),
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
        let pid = container.init.pid();
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
        let pid = sandbox
            .call("starting", sandbox.agent().start(&process.agent_id))
            .await
            .map_err(failed)?;
        if let Some(pid) = sandbox.started_pid(pid) {
            process.set_pid(pid);
        }
        process.started();
        crate::exits::watch(
            self.events.clone(),
            sandbox.clone(),
            req.id.clone(),
            req.exec_id.clone(),
            process.clone(),
        );
        if req.exec_id.is_empty() {
            let event = TaskStart {
                container_id: req.id.clone(),
                pid: process.pid(),
                ..Default::default()
            };
            self.events
                .publish(topics::TASK_START_EVENT_TOPIC, Box::new(event))
                .await;
        } else {
            let event = TaskExecStarted {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                pid: process.pid(),
                ..Default::default()
            };
            self.events
                .publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, Box::new(event))
                .await;
        }
        Ok(api::StartResponse {
            pid: process.pid(),
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
        // `all` (`ctr task kill --all`): every process of the task, its execs too.
        let mut targets = vec![process];
        if req.all && req.exec_id.is_empty() {
            targets.extend(self.running_execs(&req.id));
        }
        for p in targets {
            let signalled = sandbox
                .call("signalling", sandbox.agent().kill(&p.agent_id, signal))
                .await;
            match signalled {
                Ok(()) => {}
                // An exec that ended meanwhile.
                Err(_) if p.agent_id != req.id && p.status() != Status::Running => {}
                Err(e) => return Err(failed(e)),
            }
        }
        Ok(api::Empty::new())
    }

    async fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        self.process(&req.id, "")?;
        let sandbox = self.sandbox().await?;
        let stats = sandbox
            .call("reading stats", sandbox.agent().stats(&req.id))
            .await
            .map_err(failed)?;
        let any = crate::metrics::to_any(&crate::metrics::metrics(&stats)).map_err(failed)?;
        Ok(api::StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    async fn update(
        &self,
        _ctx: &TtrpcContext,
        req: api::UpdateTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        self.process(&req.id, "")?;
        let resources = req
            .resources
            .as_ref()
            .ok_or_else(|| status(Code::INVALID_ARGUMENT, "no resources to update"))
            .and_then(|any| {
                crate::metrics::resources(any)
                    .map_err(|e| status(Code::INVALID_ARGUMENT, format!("{e:#}")))
            })?;
        let sandbox = self.sandbox().await?;
        sandbox
            .call(
                "updating the limits",
                sandbox.agent().update_resources(&req.id, resources),
            )
            .await
            .map_err(failed)?;
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
        let pid = sandbox
            .create_exec(&req.id, &agent_id, process, !req.stdin.is_empty())
            .await
            .map_err(failed)?;
        let stdio = Stdio::new(&req.stdin, &req.stdout, &req.stderr, req.terminal);
        let exec = Arc::new(Process::new(agent_id, stdio, sandbox.pid(pid)));
        exec.attach(&sandbox).await.map_err(failed)?;
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
        let (h, w) = (
            u16::try_from(req.height).unwrap_or(u16::MAX),
            u16::try_from(req.width).unwrap_or(u16::MAX),
        );
        sandbox
            .call("resizing", sandbox.agent().resize(&process.agent_id, h, w))
            .await
            .map_err(failed)?;
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
        let listed = sandbox
            .call("listing processes", sandbox.agent().top(&req.id))
            .await
            .map_err(failed)?;
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
            if let Err(e) = s
                .call("deleting", s.agent().delete(&process.agent_id, true))
                .await
            {
                log::debug!("{}: {e}", process.agent_id);
            }
        }
        if req.exec_id.is_empty() {
            let removed = self.lock().remove(&req.id);
            if let Some(c) = removed {
                drop(c.rootfs_share);
                if let Err(e) = crate::rootfs::unmount(&c.bundle) {
                    log::warn!("{e:#}");
                }
            }
            let event = TaskDelete {
                container_id: req.id.clone(),
                pid: process.pid(),
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
            pid: process.pid(),
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
        let task_pid = self.process(&req.id, "").map(|p| p.pid()).unwrap_or(0);
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
        sandbox
            .call("freezing", sandbox.agent().freeze(id, frozen))
            .await
            .map_err(failed)?;
        Ok(api::Empty::new())
    }
}
