//! Start, stop, kill, wait, remove, attach, and the watch on every running container.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::{spec, Engine, EngineError, PendingAttach};
use crate::backend::{
    AttachIo, AttachOptions, BackendError, ExitStatus, ProcessHandle, Reconnected,
};
use crate::state::{ContainerRecord, Status, StoreError};

/// `POST /containers/{id}/wait?condition=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return at once if not running, else at the exit.
    NotRunning,
    /// The next exit.
    NextExit,
    /// Removal.
    Removed,
}

impl WaitCondition {
    /// Parse docker's names.
    pub fn parse(s: Option<&str>) -> Result<Self, EngineError> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(EngineError::bad_request(format!(
                "invalid condition: \"{other}\""
            ))),
        }
    }
}

/// Exit code docker reports for a start that failed.
fn start_failure_code(e: &BackendError) -> i32 {
    match e {
        BackendError::NotFound(_) => 127,
        BackendError::PermissionDenied(_) => 126,
        _ => 128,
    }
}

/// Parse a signal name (`TERM`, `SIGKILL`) or number.
pub fn parse_signal(s: &str) -> Result<i32, EngineError> {
    if let Ok(n) = s.parse::<i32>() {
        if nix::sys::signal::Signal::try_from(n).is_ok() {
            return Ok(n);
        }
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| EngineError::bad_request(format!("Invalid signal: {s}")))
}

impl Engine {
    /// Start a container. `Ok(false)` when it was already running (HTTP 304).
    pub async fn start_container(self: &Arc<Self>, key: &str) -> Result<bool, EngineError> {
        let id = self.container(key)?.id;
        let _guard = self.lock_container(&id).await;
        let rec = self.container(&id)?;
        match rec.state.status {
            Status::Running => return Ok(false),
            Status::Removing | Status::Dead => {
                return Err(EngineError::conflict(format!(
                    "container {} is marked for removal and cannot be started",
                    rec.short_id()
                )))
            }
            _ => {}
        }
        self.restarts.started(&id);
        let (backend, spec) = self.backend_of(&rec)?;
        let created = match backend.create(&spec).await {
            Ok(c) => c,
            Err(e) => return Err(self.record_start_failure(&id, e).await),
        };
        let extra_endpoints = match self.join_extra_networks(&backend, &spec, &rec).await {
            Ok(e) => e,
            Err(e) => {
                // Never started: releasing ends the blocked init with its cgroup.
                backend.release(&spec).await;
                return Err(e);
            }
        };
        let pending = self.take_pending_attach(&id);
        for p in pending {
            let result = created
                .process
                .attach(p.opts)
                .await
                .map_err(EngineError::from);
            let _ = p.reply.send(result);
        }
        let pid = match created.process.start().await {
            Ok(pid) => pid,
            Err(e) => {
                // The monitor records the failure as the exit; collect it so it ends.
                let _ = created.process.wait().await;
                backend.release(&spec).await;
                return Err(self.record_start_failure(&id, e).await);
            }
        };
        let rec = self.store.update(&id, |r| {
            r.state.status = Status::Running;
            r.state.pid = pid;
            r.state.monitor_pid = created.monitor_pid;
            r.state.exit_code = 0;
            r.state.oom_killed = false;
            r.state.error.clear();
            r.state.stopped_by_user = false;
            r.state.paused = false;
            r.state.started_at = Some(vmrun_shim::now_rfc3339());
            r.endpoint = created.endpoint.as_ref().map(spec::endpoint_state);
            r.ports = created.ports.iter().map(spec::port_state).collect();
            for (n, e) in r.extra_networks.iter_mut().zip(&extra_endpoints) {
                n.endpoint = e.clone();
            }
        })?;
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), created.process.clone());
        self.events.emit(
            "container",
            "start",
            &id,
            &[("name", rec.name.clone()), ("image", rec.image.clone())],
        );
        self.start_health_monitor(&id, true);
        if let Some(auto) = created.auto_ports {
            self.follow_auto_ports(id.clone(), pid, rec.ports.clone(), auto);
        }
        let engine = self.clone();
        let process = created.process;
        tokio::spawn(async move { engine.watch(id, process).await });
        Ok(true)
    }

    async fn record_start_failure(&self, id: &str, e: BackendError) -> EngineError {
        let code = start_failure_code(&e);
        let message = e.to_string();
        let rec = self.store.update(id, |r| {
            r.state.exit_code = code;
            r.state.error = message.clone();
        });
        // Like dockerd: a container that was to be removed at exit is removed when it
        // cannot start, which also answers `wait?condition=removed`.
        if rec.is_ok_and(|r| r.host_config.auto_remove.unwrap_or(false)) {
            if let Err(err) = self.remove_unlocked(id).await {
                tracing::warn!("auto-removing {id} after a failed start: {err}");
            }
        }
        e.into()
    }

    fn take_pending_attach(&self, id: &str) -> Vec<PendingAttach> {
        self.pending_attach
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .unwrap_or_default()
    }

    /// Wait for a running container's exit and record it.
    async fn watch(self: Arc<Self>, id: String, process: Arc<dyn ProcessHandle>) {
        let status = match process.wait().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("lost the monitor of {id}: {e}");
                // Shown as inspect's `State.Error` (a VM that died, an agent that hung up).
                if let Err(err) = self.store.update(&id, |r| r.state.error = e.to_string()) {
                    tracing::error!("recording the error of {id}: {err}");
                }
                ExitStatus {
                    exit_code: 255,
                    oom_killed: false,
                    finished_at: vmrun_shim::now_rfc3339(),
                }
            }
        };
        self.record_exit(&id, status).await;
    }

    async fn record_exit(self: &Arc<Self>, id: &str, status: ExitStatus) {
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let rec = match self.store.update(id, |r| {
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.monitor_pid = 0;
            r.state.exit_code = status.exit_code;
            r.state.oom_killed = status.oom_killed;
            r.state.finished_at = Some(status.finished_at.clone());
            r.state.paused = false;
            r.ports.clear();
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("recording the exit of {id}: {e}");
                return;
            }
        };
        self.release(&rec).await;
        let attrs = [
            ("name", rec.name.clone()),
            ("image", rec.image.clone()),
            ("exitCode", status.exit_code.to_string()),
        ];
        if status.oom_killed {
            self.events.emit("container", "oom", id, &attrs[..2]);
        }
        self.events.emit("container", "die", id, &attrs);
        if rec.host_config.auto_remove.unwrap_or(false) {
            match self.remove_container(id, true).await {
                Ok(()) => self.remove_anonymous_volumes(&rec).await,
                Err(e) => tracing::warn!("auto-removing {}: {e}", rec.short_id()),
            }
        } else {
            self.restart_after_exit(&rec);
        }
    }

    /// Pick up containers that were running when the daemon last stopped.
    pub async fn recover(self: &Arc<Self>) {
        for rec in self.store.list() {
            if rec.state.status != Status::Running {
                continue;
            }
            // Without its backend (a VM backend this start-up has not), the container is
            // left as it was recorded: it may well still run.
            let (backend, spec) = match self.backend_of(&rec) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("cannot reconnect to container {}: {e}", rec.short_id());
                    continue;
                }
            };
            let error = match backend.reconnect(&spec).await {
                Ok(Reconnected::Running(process)) => {
                    tracing::info!("reattached to running container {}", rec.short_id());
                    self.processes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(rec.id.clone(), process.clone());
                    self.start_health_monitor(&rec.id, false);
                    let engine = self.clone();
                    tokio::spawn(async move { engine.watch(rec.id, process).await });
                    continue;
                }
                Ok(Reconnected::Exited(status)) => {
                    self.record_exit(&rec.id, status).await;
                    continue;
                }
                Ok(Reconnected::Lost) => {
                    "the container's monitor ended without recording an exit".to_string()
                }
                Err(e) => format!("reconnecting to the container: {e}"),
            };
            if let Err(e) = self.store.update(&rec.id, |r| r.state.error = error) {
                tracing::error!("recording the error of {}: {e}", rec.short_id());
            }
            self.record_exit(
                &rec.id,
                ExitStatus {
                    exit_code: 255,
                    oom_killed: false,
                    finished_at: vmrun_shim::now_rfc3339(),
                },
            )
            .await;
        }
        self.restart_at_daemon_start();
    }

    /// Send a signal. Errors when the container is not running.
    pub async fn kill_container(&self, key: &str, signal: &str) -> Result<(), EngineError> {
        // A missing container is a 404 whatever the signal (as dockerd).
        let rec = self.container(key)?;
        let sig = parse_signal(signal)?;
        if !rec.is_running() {
            return Err(EngineError::not_running(format!(
                "Cannot kill container: {key}: Container {} is not running",
                rec.id
            )));
        }
        self.restarts.exit_on_next(&rec.id);
        self.kill(&rec, sig).await?;
        self.events.emit(
            "container",
            "kill",
            &rec.id,
            &[("name", rec.name.clone()), ("signal", sig.to_string())],
        );
        Ok(())
    }

    /// Stop: the stop signal, then SIGKILL after `timeout` seconds. `Ok(false)` when it
    /// was not running (HTTP 304).
    pub async fn stop_container(
        &self,
        key: &str,
        timeout: Option<i64>,
    ) -> Result<bool, EngineError> {
        let mut events = self.events.subscribe();
        let rec = self.container(key)?;
        self.settle_restart(&rec.id).await;
        let rec = self.container(&rec.id)?;
        if !rec.is_running() {
            self.stopped_while_down(&rec)?;
            return Ok(false);
        }
        self.store
            .update(&rec.id, |r| r.state.stopped_by_user = true)?;
        // A paused container is thawed so it can handle its stop signal.
        if rec.state.paused {
            self.thaw(&rec).await?;
        }
        let stop_signal = rec
            .config
            .stop_signal
            .clone()
            .unwrap_or_else(|| "SIGTERM".into());
        let timeout = timeout.or(rec.config.stop_timeout).unwrap_or(10).max(0) as u64;
        let sig = parse_signal(&stop_signal).unwrap_or(libc::SIGTERM);
        if let Err(e) = self.kill(&rec, sig).await {
            tracing::debug!("stop signal to {}: {e}", rec.short_id());
        }
        if wait_for_die(&mut events, &rec.id, Duration::from_secs(timeout)).await {
            return Ok(true);
        }
        let rec = self.container(&rec.id)?;
        if rec.is_running() {
            let _ = self.kill(&rec, libc::SIGKILL).await;
            wait_for_die(&mut events, &rec.id, Duration::from_secs(30)).await;
        }
        Ok(true)
    }

    /// Stop (if running) and start again.
    pub async fn restart_container(
        self: &Arc<Self>,
        key: &str,
        timeout: Option<i64>,
    ) -> Result<(), EngineError> {
        self.stop_container(key, timeout).await?;
        self.start_container(key).await?;
        self.events
            .emit("container", "restart", &self.container(key)?.id, &[]);
        Ok(())
    }

    /// Remove a container; `force` kills it first if it runs.
    pub async fn remove_container(&self, key: &str, force: bool) -> Result<(), EngineError> {
        let rec = self.container(key)?;
        if rec.is_running() {
            if !force {
                return Err(EngineError::conflict(format!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    rec.name
                )));
            }
            let mut events = self.events.subscribe();
            let _ = self.kill(&rec, libc::SIGKILL).await;
            wait_for_die(&mut events, &rec.id, Duration::from_secs(30)).await;
        }
        let _guard = self.lock_container(&rec.id).await;
        self.remove_unlocked(&rec.id).await
    }

    /// Remove a stopped container; the caller holds its operation lock.
    async fn remove_unlocked(&self, id: &str) -> Result<(), EngineError> {
        let rec = match self.store.update(id, |r| r.state.status = Status::Removing) {
            Ok(r) => r,
            // Removed meanwhile (auto-remove).
            Err(StoreError::NotFound(_)) => return Ok(()),
            // Anything else (a record that cannot be written) is the user's to see.
            Err(e) => return Err(e.into()),
        };
        let removed = match self.backend_of(&rec) {
            Ok((backend, spec)) => backend.remove(&spec).await.map_err(EngineError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            if let Err(err) = self
                .store
                .update(&rec.id, |r| r.state.status = Status::Dead)
            {
                tracing::error!("recording {} as dead: {err}", rec.short_id());
            }
            return Err(e);
        }
        self.store.remove(&rec.id);
        if let Err(e) = self.images.release(&rec.id) {
            tracing::warn!(container = %rec.id, error = %e, "releasing the image layers failed");
        }
        self.pending_attach
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&rec.id);
        self.events.emit(
            "container",
            "destroy",
            &rec.id,
            &[("name", rec.name.clone()), ("image", rec.image.clone())],
        );
        Ok(())
    }

    /// Subscribe for a wait; the returned future yields the exit code.
    pub fn wait_container(
        &self,
        key: &str,
        condition: WaitCondition,
    ) -> Result<
        impl std::future::Future<Output = Result<i32, EngineError>> + Send + 'static,
        EngineError,
    > {
        let mut events = self.events.subscribe();
        let rec = self.container(key)?;
        let done_now = condition == WaitCondition::NotRunning && !rec.is_running();
        let id = rec.id.clone();
        let mut last_exit = rec.state.exit_code;
        Ok(async move {
            if done_now {
                return Ok(last_exit);
            }
            loop {
                match events.recv().await {
                    Ok(ev) if ev.typ == "container" && ev.actor.id == id => {
                        match ev.action.as_str() {
                            "die" => {
                                last_exit = ev
                                    .attr("exitCode")
                                    .and_then(|c| c.parse().ok())
                                    .unwrap_or(last_exit);
                                if condition != WaitCondition::Removed {
                                    return Ok(last_exit);
                                }
                            }
                            "destroy" => return Ok(last_exit),
                            _ => {}
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(EngineError::internal("the daemon is shutting down"))
                    }
                }
            }
        })
    }

    /// Attach to a container's stdio. If it is not running, the stream is connected when
    /// it next starts (this is how `docker run` and `docker start -a` attach).
    pub async fn attach_container(
        &self,
        key: &str,
        opts: AttachOptions,
    ) -> Result<
        impl std::future::Future<Output = Result<Box<dyn AttachIo>, EngineError>> + Send + 'static,
        EngineError,
    > {
        let rec = self.container(key)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.process(&rec.id) {
            Some(p) => {
                let result = p.attach(opts).await.map_err(EngineError::from);
                let _ = tx.send(result);
            }
            None => {
                self.pending_attach
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(rec.id.clone())
                    .or_default()
                    .push(PendingAttach { opts, reply: tx });
            }
        }
        Ok(async move {
            rx.await
                .unwrap_or_else(|_| Err(EngineError::conflict("the container was removed")))
        })
    }

    /// Resize a container's terminal.
    pub async fn resize_container(
        &self,
        key: &str,
        height: u16,
        width: u16,
    ) -> Result<(), EngineError> {
        let rec = self.container(key)?;
        let p = self.process(&rec.id).ok_or_else(|| {
            EngineError::not_running(format!("Container {} is not running", rec.id))
        })?;
        Ok(p.resize(height, width).await?)
    }

    /// Rename a container, checking the new name is valid and free.
    pub fn rename_container(&self, key: &str, name: &str) -> Result<(), EngineError> {
        let name = name.trim_start_matches('/');
        let rec = self.container(key)?;
        super::validate_name(name).map_err(EngineError::BadRequest)?;
        self.store.rename(&rec.id, name)?;
        self.events.emit(
            "container",
            "rename",
            &rec.id,
            &[("name", name.to_string())],
        );
        Ok(())
    }

    /// Signal a container's init through its backend.
    async fn kill(&self, rec: &ContainerRecord, signal: i32) -> Result<(), EngineError> {
        let (backend, spec) = self.backend_of(rec)?;
        backend.kill(&spec, signal).await?;
        self.thaw_for_signal(rec, signal).await;
        Ok(())
    }

    /// Release what a container's last run held; a container whose backend is gone has
    /// nothing to release.
    async fn release(&self, rec: &ContainerRecord) {
        match self.backend_of(rec) {
            Ok((backend, spec)) => backend.release(&spec).await,
            Err(e) => tracing::warn!("releasing {}: {e}", rec.short_id()),
        }
    }
}

/// Wait until `id` dies or `timeout` passes; true when it died.
async fn wait_for_die(
    events: &mut broadcast::Receiver<super::Event>,
    id: &str,
    timeout: Duration,
) -> bool {
    let fut = async {
        loop {
            match events.recv().await {
                Ok(ev) if ev.actor.id == id && ev.action == "die" => return true,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return false,
            }
        }
    };
    tokio::time::timeout(timeout, fut).await.unwrap_or(false)
}
