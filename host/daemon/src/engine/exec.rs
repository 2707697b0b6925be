//! `docker exec`: extra processes in running containers.

use std::sync::Arc;

use super::{Engine, EngineError};
use crate::backend::{AttachIo, AttachOptions, ExecSpec, ProcessHandle};
use crate::state::ContainerRecord;

/// One exec, kept in memory like docker does.
#[derive(Clone)]
pub struct ExecRecord {
    /// Settings.
    pub spec: ExecSpec,
    /// The container.
    pub container_id: String,
    /// Attach stdio when started.
    pub attach: AttachOptions,
    /// Started and not yet exited.
    pub running: bool,
    /// Exit code once exited.
    pub exit_code: Option<i32>,
    /// Host pid while running.
    pub pid: i32,
    process: Option<Arc<dyn ProcessHandle>>,
}

impl Engine {
    /// Create an exec in a running container; returns its id.
    pub fn exec_create(
        &self,
        key: &str,
        mut spec: ExecSpec,
        attach: AttachOptions,
    ) -> Result<String, EngineError> {
        let rec = self.container(key)?;
        if !rec.is_running() {
            return Err(EngineError::not_running(format!(
                "container {} is not running",
                rec.id
            )));
        }
        if rec.state.paused {
            return Err(EngineError::conflict(format!(
                "Container {key} is paused, unpause the container before exec"
            )));
        }
        if spec.cmd.is_empty() {
            return Err(EngineError::bad_request("No exec command specified"));
        }
        // No user given: the container's (`--user`), as dockerd runs execs.
        if spec.user.as_deref().is_none_or(str::is_empty) {
            spec.user = rec.config.user.clone().filter(|u| !u.is_empty());
        }
        spec.id = super::new_id();
        let id = spec.id.clone();
        self.execs.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id.clone(),
            ExecRecord {
                spec,
                container_id: rec.id.clone(),
                attach,
                running: false,
                exit_code: None,
                pid: 0,
                process: None,
            },
        );
        self.events.emit(
            "container",
            "exec_create",
            &rec.id,
            &[("name", rec.name.clone())],
        );
        Ok(id)
    }

    /// An exec by id.
    /// Exec `id` and its container, if it can start now: not started before, its
    /// container running.
    pub fn exec_startable(&self, id: &str) -> Result<(ExecRecord, ContainerRecord), EngineError> {
        let exec = self.exec_get(id)?;
        if exec.running || exec.exit_code.is_some() {
            return Err(EngineError::conflict(format!(
                "exec {id} has already been started"
            )));
        }
        let rec = self.container(&exec.container_id)?;
        if !rec.is_running() {
            return Err(EngineError::not_running(format!(
                "container {} is not running",
                rec.id
            )));
        }
        Ok((exec, rec))
    }

    pub fn exec_get(&self, id: &str) -> Result<ExecRecord, EngineError> {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::not_found(format!("No such exec instance: {id}")))
    }

    fn exec_update(&self, id: &str, f: impl FnOnce(&mut ExecRecord)) {
        if let Some(e) = self
            .execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
        {
            f(e);
        }
    }

    /// Start an exec. With `detach`, no stdio is attached; otherwise the returned stream
    /// carries it.
    pub async fn exec_start(
        self: &Arc<Self>,
        id: &str,
        detach: bool,
    ) -> Result<Option<Box<dyn AttachIo>>, EngineError> {
        let (exec, rec) = self.exec_startable(id)?;
        let (backend, spec) = self.backend_of(&rec)?;
        let process = backend.create_exec(&spec, &exec.spec).await?;
        let io = if detach {
            None
        } else {
            Some(process.attach(exec.attach).await?)
        };
        let pid = match process.start().await {
            Ok(pid) => pid,
            Err(e) => {
                // Collect the shim's record so it ends; dockerd reports 126 for an exec
                // that could not start, whatever the cause.
                let _ = process.wait().await;
                self.exec_update(id, |x| x.exit_code = Some(126));
                return Err(e.into());
            }
        };
        self.exec_update(id, |x| {
            x.running = true;
            x.pid = pid;
            x.process = Some(process.clone());
        });
        self.events.emit(
            "container",
            "exec_start",
            &rec.id,
            &[("name", rec.name.clone())],
        );
        let engine = self.clone();
        let exec_id = id.to_string();
        tokio::spawn(async move {
            let code = process.wait().await.map(|s| s.exit_code).unwrap_or(255);
            engine.exec_update(&exec_id, |x| {
                x.running = false;
                x.exit_code = Some(code);
                x.pid = 0;
                x.process = None;
            });
            engine.events.emit(
                "container",
                "exec_die",
                &rec.id,
                &[("name", rec.name.clone()), ("exitCode", code.to_string())],
            );
        });
        Ok(io)
    }

    /// Resize an exec's terminal.
    pub async fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<(), EngineError> {
        let exec = self.exec_get(id)?;
        let p = exec
            .process
            .ok_or_else(|| EngineError::not_running(format!("exec {id} is not running")))?;
        Ok(p.resize(height, width).await?)
    }
}

impl Engine {
    /// After an exec's output has ended, give its exit a moment to be recorded, so a
    /// client asking for the exit code right after sees it.
    pub async fn exec_settle(&self, id: &str) {
        for _ in 0..200 {
            match self.exec_get(id) {
                Ok(e) if e.exit_code.is_none() => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await
                }
                _ => return,
            }
        }
    }
}
