//! Where a shim's tasks run: in its sandbox microVM ([`Sandbox`], the default), or, when
//! asked for no VM ([`Isolation::None`]), on this host under the same guest agent run as
//! a host process ([`HostAgent`]). Either way the tasks are the agent's containers and
//! execs, driven through one [`AgentClient`], so the Task API has one code path.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use vmrun_agent_client::{AgentClient, ClientError};
use vmrun_daemon::backend::vm::shares::ContainerShares;

use crate::host_agent::HostAgent;
use crate::isolation::Isolation;
use crate::sandbox::Sandbox;

/// Deadline of one agent call on the host.
const HOST_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The sandbox of one shim's tasks.
pub enum Runner {
    /// A microVM.
    Vm(Sandbox),
    /// The agent on this host: tasks are native containers.
    Host(Box<HostAgent>),
}

impl Runner {
    /// Starts the sandbox of task `id` (bundle `bundle`) as `isolation` says.
    pub async fn start(isolation: Isolation, id: &str, bundle: &Path) -> anyhow::Result<Runner> {
        Ok(match isolation {
            Isolation::Vm => Runner::Vm(Sandbox::boot(id, bundle).await?),
            Isolation::None => Runner::Host(Box::new(HostAgent::start().await?)),
        })
    }

    /// The agent.
    pub fn agent(&self) -> &AgentClient {
        match self {
            Runner::Vm(s) => s.machine().agent(),
            Runner::Host(h) => h.agent(),
        }
    }

    /// One agent call with a deadline (none: `wait`), failing early when the VM stops.
    pub async fn call_until<T>(
        &self,
        what: &str,
        deadline: Option<Duration>,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> anyhow::Result<T> {
        match self {
            Runner::Vm(s) => Ok(s.machine().call_until(what, deadline, fut).await?),
            Runner::Host(_) => {
                let r = match deadline {
                    Some(d) => tokio::time::timeout(d, fut).await.map_err(|_| {
                        anyhow::anyhow!("{what}: the agent did not answer within {d:?}")
                    })?,
                    None => fut.await,
                };
                r.map_err(|e| anyhow::anyhow!("{what}: {e}"))
            }
        }
    }

    /// One agent call with the usual deadline.
    pub async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> anyhow::Result<T> {
        match self {
            Runner::Vm(s) => Ok(s.machine().call(what, fut).await?),
            Runner::Host(_) => self.call_until(what, Some(HOST_CALL_TIMEOUT), fut).await,
        }
    }

    /// What containerd is told a process's pid is before it runs: the VM monitor's (guest
    /// pids mean nothing on the host); on the host, the process's monitor until
    /// [`Runner::started_pid`] gives the process's own.
    pub fn pid(&self, created: i32) -> u32 {
        match self {
            Runner::Vm(s) => s.pid(),
            Runner::Host(_) => u32::try_from(created).unwrap_or(0),
        }
    }

    /// containerd's pid of a process that started with `pid` in the agent.
    pub fn started_pid(&self, pid: i32) -> Option<u32> {
        match self {
            Runner::Vm(_) => None,
            Runner::Host(_) => u32::try_from(pid).ok(),
        }
    }

    /// Creates container `id` from the bundle's `spec` over `rootfs` (containerd's
    /// snapshot, mounted on the host); returns what serves the rootfs (until dropped) and
    /// the pid the agent reports.
    pub async fn create_container(
        &self,
        id: &str,
        spec: Value,
        rootfs: &Path,
        tty: bool,
        open_stdin: bool,
    ) -> anyhow::Result<(ContainerShares, i32)> {
        match self {
            Runner::Vm(s) => Ok((
                s.create_container(id, spec, rootfs, tty, open_stdin)
                    .await?,
                0,
            )),
            Runner::Host(h) => {
                let pid = h
                    .create_container(id, spec, rootfs, tty, open_stdin)
                    .await?;
                Ok((ContainerShares::default(), pid))
            }
        }
    }

    /// Creates exec `exec_id` of `container` running OCI `process`.
    pub async fn create_exec(
        &self,
        container: &str,
        exec_id: &str,
        process: Value,
        open_stdin: bool,
    ) -> anyhow::Result<i32> {
        match self {
            Runner::Vm(s) => {
                s.create_exec(container, exec_id, process, open_stdin)
                    .await?;
                Ok(0)
            }
            Runner::Host(h) => {
                let req = vmrun_agent_protocol::CreateExec {
                    container_id: container.to_string(),
                    exec_id: exec_id.to_string(),
                    process,
                    open_stdin,
                    console_size: None,
                };
                self.call("creating the exec", h.agent().exec(req)).await
            }
        }
    }

    /// Ends the VM, or the agent on the host.
    pub async fn shutdown(&self) {
        match self {
            Runner::Vm(s) => s.shutdown().await,
            Runner::Host(h) => h.shutdown().await,
        }
    }
}

/// Containerd task `id` as the agent's container over `rootfs`, in either runner: the user
/// is the spec's, stdin closes with the first attach's end, and no log is kept (stdio goes
/// to containerd's FIFOs).
pub fn task_request(
    id: &str,
    spec: Value,
    rootfs: vmrun_agent_protocol::RootfsSpec,
    tty: bool,
    open_stdin: bool,
) -> vmrun_agent_protocol::CreateContainer {
    vmrun_agent_protocol::CreateContainer {
        id: id.to_string(),
        spec,
        rootfs,
        user: None,
        tty,
        open_stdin,
        stdin_once: true,
        console_size: None,
        log_path: None,
        log_rotation: None,
        etc_files: None,
    }
}
