//! A running microVM (one container's, or the shared VM): the [`VmInstance`], the
//! [`AgentClient`] over its hybrid vsock, a watch on the monitor process, and the
//! host-side copies of its containers' logs.
//!
//! Every agent call but `wait` has a deadline (`vmrund --vm-agent-timeout`, 30 s) and every call ends
//! early, with the VM's exit reason, when the VM stops: a dead or hung guest gives the
//! CLI an error instead of a hang.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use vmrun_agent_client::{AgentClient, ClientError, Connector};
use vmrun_agent_protocol::{ErrorKind, ShutdownAction, StreamTarget, AGENT_PORT};
use vmrun_vm::{VmBackend, VmInstance, VmSpec};

use crate::backend::BackendError;

/// Deadline from launch to the agent's welcome, unless `VMRUN_VM_BOOT_TIMEOUT` (seconds)
/// says otherwise ([`boot_timeout`]).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Names another deadline from launch to the agent's welcome, in seconds: a VM monitor
/// much slower than TCG on one level (our VMM in the nested KVM test host, two levels of
/// emulation, took 40 to over 60 s on a loaded 2-core machine) needs more.
pub const BOOT_TIMEOUT_ENV: &str = "VMRUN_VM_BOOT_TIMEOUT";

/// The deadline from launch to the agent's welcome: [`BOOT_TIMEOUT_ENV`] when it holds a
/// whole number of seconds above 0, else [`BOOT_TIMEOUT`].
pub fn boot_timeout() -> Duration {
    std::env::var(BOOT_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(BOOT_TIMEOUT, Duration::from_secs)
}
/// One attempt to connect and say hello (also the connect deadline of later streams).
const CONNECT_ATTEMPT: Duration = Duration::from_secs(8);
/// What the agent prints on the console once it serves.
const AGENT_READY: &[u8] = b"vmrun-agent: ready";
/// How long a guest gets to end after `shutdown` before its monitor is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the log copy may take to catch up after the container exited.
const LOG_DRAIN: Duration = Duration::from_secs(5);

/// A running microVM and its agent.
pub struct Machine {
    vm: Arc<dyn VmInstance>,
    agent: AgentClient,
    exited: watch::Receiver<Option<String>>,
    /// Per container: the task copying its guest log into the host's.
    log_copies: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    booted: Instant,
    call_timeout: Duration,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine").field("vm", &self.vm).finish()
    }
}

/// `ClientError` as a backend error; `CommandNotFound` and `PermissionDenied` keep their
/// meaning (docker's 127 and 126).
pub fn agent_error(what: &str, e: ClientError) -> BackendError {
    match e {
        ClientError::Agent(a) => {
            let msg = a.message;
            match a.kind {
                ErrorKind::CommandNotFound => BackendError::NotFound(msg),
                ErrorKind::PermissionDenied => BackendError::PermissionDenied(msg),
                ErrorKind::BadUser | ErrorKind::BadRequest => BackendError::BadRequest(msg),
                ErrorKind::NotFound | ErrorKind::Conflict => BackendError::Gone(msg),
                _ => BackendError::Failed(format!("{what}: {msg}")),
            }
        }
        ClientError::Closed | ClientError::Frame(_) | ClientError::Connect(_) => {
            BackendError::Gone(format!("{what}: {e}"))
        }
        other => BackendError::Failed(format!("{what}: {other}")),
    }
}

impl Machine {
    /// Launches the VM of `spec` and connects to its agent; on any error nothing is left
    /// running.
    pub async fn boot(
        backend: Arc<dyn VmBackend>,
        spec: VmSpec,
        call_timeout: Duration,
    ) -> Result<Self, BackendError> {
        let serial = spec.serial_log.clone();
        let vm: Arc<dyn VmInstance> = tokio::task::spawn_blocking(move || backend.launch(&spec))
            .await
            .map_err(|e| BackendError::Failed(format!("launching the VM panicked: {e}")))?
            .map(Arc::from)
            .map_err(|e| BackendError::Failed(format!("launching the VM: {e}")))?;
        let (tx, exited) = watch::channel(None);
        let watched = vm.clone();
        tokio::task::spawn_blocking(move || {
            let why = match watched.wait() {
                Ok(exit) => exit.to_string(),
                Err(e) => e.to_string(),
            };
            let _ = tx.send(Some(why));
        });
        let mut watch = exited.clone();
        let deadline = boot_timeout();
        let connected = tokio::select! {
            r = tokio::time::timeout(deadline, connect(vm.vsock_path(), serial.as_deref())) => match r {
                Ok(Ok(agent)) => Ok(agent),
                Ok(Err(e)) => Err(format!("connecting to the guest agent: {e}")),
                Err(_) => Err(not_ready(deadline, serial.as_deref()).await),
            },
            why = wait_exit(&mut watch) => Err(format!("the VM stopped while booting: {why}")),
        };
        match connected {
            Ok(agent) => {
                tracing::debug!(pid = vm.pid(), "guest agent ready");
                Ok(Machine {
                    vm,
                    agent,
                    exited,
                    log_copies: Mutex::new(HashMap::new()),
                    booted: Instant::now(),
                    call_timeout,
                })
            }
            Err(why) => {
                stop(&vm, Duration::ZERO).await;
                let tail = serial.as_deref().map(serial_tail).unwrap_or_default();
                Err(BackendError::Failed(format!("{why}{tail}")))
            }
        }
    }

    /// The monitor's backend name (`qemu`, `vmm`).
    pub fn backend(&self) -> &'static str {
        self.vm.backend()
    }

    /// The monitor's pid.
    pub fn pid(&self) -> u32 {
        self.vm.pid()
    }

    /// Keeps the guest clock in step with the host's while the VM runs
    /// ([`super::clock`]).
    pub fn keep_clock(self: &Arc<Self>) {
        tokio::spawn(super::clock::keep_in_sync(Arc::downgrade(self)));
    }

    /// How long the VM has been up (since its agent answered).
    pub fn uptime(&self) -> Duration {
        self.booted.elapsed()
    }

    /// The agent, for calls that go through [`Machine::call`].
    pub fn agent(&self) -> &AgentClient {
        &self.agent
    }

    /// Why the VM stopped, once it has (never blocks).
    pub fn exit_reason(&self) -> Option<String> {
        self.exited.borrow().clone()
    }

    /// Resolves when the VM has stopped, with the reason.
    pub async fn stopped(&self) -> String {
        let mut watch = self.exited.clone();
        wait_exit(&mut watch).await
    }

    /// Runs one agent call with the daemon's call deadline, failing early when the VM
    /// stops.
    pub async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, BackendError> {
        self.call_until(what, Some(self.call_timeout), fut).await
    }

    /// The deadline of one agent call.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// [`Machine::call`] with any deadline, or none (`wait`).
    pub async fn call_until<T>(
        &self,
        what: &str,
        deadline: Option<Duration>,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, BackendError> {
        let limited = async {
            match deadline {
                Some(d) => tokio::time::timeout(d, fut).await.map_err(|_| {
                    BackendError::Failed(format!(
                        "{what}: the guest agent did not answer within {}s",
                        d.as_secs()
                    ))
                }),
                None => Ok(fut.await),
            }
        };
        tokio::select! {
            r = limited => match r? {
                Ok(v) => Ok(v),
                Err(e) => {
                    // A connection that died with the VM: say why the VM stopped.
                    let gone = matches!(e, ClientError::Closed | ClientError::Frame(_) | ClientError::Connect(_));
                    if gone {
                        if let Ok(why) = tokio::time::timeout(Duration::from_secs(2), self.stopped()).await {
                            return Err(BackendError::Gone(format!("{what}: the container's VM stopped: {why}")));
                        }
                    }
                    Err(agent_error(what, e))
                }
            },
            why = self.stopped() => Err(BackendError::Gone(format!("{what}: the container's VM stopped: {why}"))),
        }
    }

    /// Copies the guest's json-file log of container `id` into `host_log` (appending) as
    /// it is written, until the container has exited, rotating it as `rotation` says
    /// (`--log-opt max-size`/`max-file`, as the native monitor does: one record, one
    /// line, never split across two files).
    pub async fn follow_log(
        &self,
        id: &str,
        host_log: &Path,
        rotation: Option<vmrun_shim::logfile::Rotation>,
    ) -> Result<(), BackendError> {
        let target = StreamTarget::Logs {
            id: id.to_string(),
            follow: true,
        };
        let stream = self
            .call("opening the log stream", self.agent.open_stream(target))
            .await?;
        let mut file = vmrun_shim::logfile::LogFile::open(host_log, rotation)
            .map_err(|e| BackendError::Failed(format!("opening {}: {e}", host_log.display())))?;
        let path: PathBuf = host_log.to_owned();
        let task = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match lines.read_until(b'\n', &mut line).await {
                    Ok(0) => break,
                    // A local append (and now and then a rename): short enough to do here.
                    Ok(_) => {
                        if let Err(e) = std::io::Write::write(&mut file, &line) {
                            tracing::warn!("writing the guest log into {}: {e}", path.display());
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("copying the guest log into {}: {e}", path.display());
                        break;
                    }
                }
            }
            let _ = std::io::Write::flush(&mut file);
        });
        if let Some(old) = self
            .log_copies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), task)
        {
            old.abort();
        }
        Ok(())
    }

    /// Lets the copy of container `id`'s log catch up with what the container wrote (it
    /// ends at the exit).
    pub async fn drain_log(&self, id: &str) {
        let copy = self
            .log_copies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(mut copy) = copy {
            if tokio::time::timeout(LOG_DRAIN, &mut copy).await.is_err() {
                copy.abort();
            }
        }
        tracing::debug!(pid = self.vm.pid(), container = id, "log copied");
    }

    /// [`Machine::drain_log`] for every container.
    async fn drain_logs(&self) {
        let ids: Vec<String> = self
            .log_copies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for id in ids {
            self.drain_log(&id).await;
        }
    }

    /// Ends the VM: asks the agent to shut the guest down (sync, unmount: the data disk
    /// stays consistent) and waits for the monitor, killing it after a grace period.
    pub async fn shutdown(&self) {
        self.drain_logs().await;
        if self.exit_reason().is_some() {
            return;
        }
        let asked = self
            .call(
                "shutting the VM down",
                self.agent.shutdown(ShutdownAction::Reboot),
            )
            .await;
        let grace = match asked {
            Ok(()) => SHUTDOWN_GRACE,
            Err(e) => {
                tracing::warn!("{e}; stopping the VM");
                Duration::ZERO
            }
        };
        if tokio::time::timeout(grace, self.stopped()).await.is_err() {
            tracing::warn!(
                pid = self.vm.pid(),
                "the VM did not end after shutdown; stopping it"
            );
        }
        stop(&self.vm, Duration::from_secs(1)).await;
    }
}

/// Waits for the agent's ready line on the serial console (a `CONNECT` sent while the
/// guest's vsock driver is still coming up can leave `vhost-device-vsock` unanswering),
/// then connects, in bounded attempts: a hello that goes unanswered is tried again on a
/// fresh connection.
/// Why a boot ran out of time: the guest never said its agent was ready on the console,
/// or it did and the agent's port did not answer.
async fn not_ready(deadline: Duration, serial: Option<&Path>) -> String {
    let secs = deadline.as_secs();
    let Some(serial) = serial else {
        return format!("the guest agent did not answer within {secs}s");
    };
    let text = tokio::fs::read(serial).await.unwrap_or_default();
    if text.windows(AGENT_READY.len()).any(|w| w == AGENT_READY) {
        format!(
            "the guest agent did not answer within {secs}s (it said it was ready on the \
             console; its vsock port did not answer)"
        )
    } else {
        format!(
            "the guest agent did not answer within {secs}s (the guest had not started it: \
             a slow boot, or {BOOT_TIMEOUT_ENV} too short for this host)"
        )
    }
}

async fn connect(vsock: &Path, serial: Option<&Path>) -> Result<AgentClient, ClientError> {
    if let Some(serial) = serial {
        loop {
            let text = tokio::fs::read(serial).await.unwrap_or_default();
            if text.windows(AGENT_READY.len()).any(|w| w == AGENT_READY) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    loop {
        let connector = Connector::HybridVsock {
            path: vsock.to_owned(),
            port: AGENT_PORT,
            timeout: CONNECT_ATTEMPT,
        };
        match tokio::time::timeout(CONNECT_ATTEMPT, AgentClient::connect(connector, "vmrund")).await
        {
            Ok(Ok(agent)) => return Ok(agent),
            Ok(Err(e @ ClientError::Version(_))) => return Err(e),
            Ok(Err(e)) => tracing::debug!("connecting to the guest agent: {e}; trying again"),
            Err(_) => tracing::debug!("the guest agent did not answer the hello; trying again"),
        }
    }
}

impl Machine {
    /// Ends the VM now, without a clean shutdown (its disks are about to be deleted).
    pub async fn kill(&self) {
        stop(&self.vm, Duration::ZERO).await;
    }
}

/// Stops the monitor (SIGTERM, SIGKILL after `grace`) and waits for it.
async fn stop(vm: &Arc<dyn VmInstance>, grace: Duration) {
    let vm = vm.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = vm.stop(grace) {
            tracing::warn!("stopping the VM: {e}");
        }
    })
    .await;
}

async fn wait_exit(watch: &mut watch::Receiver<Option<String>>) -> String {
    loop {
        if let Some(why) = watch.borrow_and_update().clone() {
            return why;
        }
        if watch.changed().await.is_err() {
            return "the VM monitor is gone".into();
        }
    }
}

/// The end of the guest's serial log, for boot errors.
fn serial_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    if tail.is_empty() {
        String::new()
    } else {
        format!("; serial console ({}):\n{tail}", path.display())
    }
}
