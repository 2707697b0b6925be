//! The seam between the engine and where containers run.
//!
//! The engine knows containers only through [`ContainerBackend`] and their processes only
//! through [`ProcessHandle`]. Today: [`native`], the runtime library on this host, one
//! `vmrun-shim` per process. A VM backend implements the same traits over the guest agent.

pub mod native;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::state::{ContainerRecord, EndpointState, PublishedPortState};

pub use vmrun_shim::ExitStatus;

/// Errors of a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The command does not exist in the container.
    #[error("{0}")]
    NotFound(String),
    /// The command cannot be executed.
    #[error("{0}")]
    PermissionDenied(String),
    /// The request names something that does not exist or is malformed (a bind source,
    /// a user, a network).
    #[error("{0}")]
    BadRequest(String),
    /// The container's process is gone.
    #[error("{0}")]
    Gone(String),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

/// A bidirectional byte stream to a process's stdio.
pub trait AttachIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AttachIo for T {}

/// What to attach to.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOptions {
    /// Send stdin.
    pub stdin: bool,
    /// Receive stdout.
    pub stdout: bool,
    /// Receive stderr.
    pub stderr: bool,
}

/// A created process: a container's init or an exec.
#[async_trait]
pub trait ProcessHandle: Send + Sync {
    /// Connect to the process's stdio. Output is docker-framed unless it has a terminal.
    async fn attach(&self, opts: AttachOptions) -> Result<Box<dyn AttachIo>, BackendError>;
    /// Let it run; returns its pid.
    async fn start(&self) -> Result<i32, BackendError>;
    /// Wait for its exit.
    async fn wait(&self) -> Result<ExitStatus, BackendError>;
    /// Resize its terminal.
    async fn resize(&self, height: u16, width: u16) -> Result<(), BackendError>;
}

/// A container's init process, created and not yet started, with what was set up for it.
pub struct CreatedContainer {
    /// The process.
    pub process: Arc<dyn ProcessHandle>,
    /// Pid of the monitor (shim) process, if any.
    pub monitor_pid: i32,
    /// Its network endpoint.
    pub endpoint: Option<EndpointState>,
    /// Its published ports.
    pub ports: Vec<PublishedPortState>,
}

/// An exec's settings.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// Exec id.
    pub id: String,
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// Extra environment (`K=V`).
    pub env: Vec<String>,
    /// Working directory, or the container's.
    pub workdir: Option<String>,
    /// User, or the container's.
    pub user: Option<String>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub open_stdin: bool,
    /// Run with all capabilities.
    pub privileged: bool,
    /// Initial terminal size `[height, width]`.
    pub console_size: Option<[u16; 2]>,
}

/// Resource usage of a container: the cgroup's figures, whichever backend reads them.
pub use vmrun_cgroups::CgroupStats as ResourceStats;

/// Docker's `ConsoleSize` (`[height, width]`) as a terminal size; zeros mean unset.
pub fn console_size(size: Option<&[usize]>) -> Option<[u16; 2]> {
    match size {
        Some([h, w]) if *h > 0 && *w > 0 => Some([
            u16::try_from(*h).unwrap_or(u16::MAX),
            u16::try_from(*w).unwrap_or(u16::MAX),
        ]),
        _ => None,
    }
}

/// Where containers run.
#[async_trait]
pub trait ContainerBackend: Send + Sync {
    /// Set up everything the container needs (root filesystem, network, ports) and
    /// create its init process, blocked before `exec`.
    async fn create(&self, rec: &ContainerRecord) -> Result<CreatedContainer, BackendError>;
    /// Create an exec process in a running container.
    async fn create_exec(
        &self,
        rec: &ContainerRecord,
        spec: &ExecSpec,
    ) -> Result<Arc<dyn ProcessHandle>, BackendError>;
    /// Find the process of a container that ran before the daemon restarted: `Ok(None)`
    /// when it is gone, with its exit status if one was recorded.
    async fn reconnect(&self, rec: &ContainerRecord) -> Result<Reconnected, BackendError>;
    /// Release what the last run held (network endpoint, published ports).
    async fn release(&self, rec: &ContainerRecord);
    /// Delete the container's writable layer and files.
    async fn remove(&self, rec: &ContainerRecord) -> Result<(), BackendError>;
    /// Send a signal to the container's init.
    async fn kill(&self, rec: &ContainerRecord, signal: i32) -> Result<(), BackendError>;
    /// Resource usage.
    async fn stats(&self, rec: &ContainerRecord) -> Result<ResourceStats, BackendError>;
    /// Host pids of the container's processes.
    async fn pids(&self, rec: &ContainerRecord) -> Result<Vec<i32>, BackendError>;
}

/// What [`ContainerBackend::reconnect`] found.
pub enum Reconnected {
    /// Still running: watch it again.
    Running(Arc<dyn ProcessHandle>),
    /// Ended while the daemon was away.
    Exited(ExitStatus),
    /// Gone without a record of its exit.
    Lost,
}
