//! The seam between the engine and where containers run.
//!
//! The engine knows containers only through [`ContainerBackend`] and their processes only
//! through [`ProcessHandle`], and tells a backend about a container with a
//! backend-neutral [`ContainerSpec`]. A daemon holds its backends in [`Backends`], keyed
//! by [`Isolation`]; the engine picks one per container. Only this module names an
//! implementation: [`host_backends`] registers them: `native` (the runtime library on this
//! host, one `vmrun-shim` per process), `vm` (a microVM per container) and `shared-vm`
//! (the daemon's one shared VM, controlled through [`SharedVmControl`]), the last two
//! over the guest agent.

mod archive;
mod changes;
mod container;
mod exec;
mod native;
mod ports;
mod registry;
mod stream_io;
pub mod vm;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

pub use archive::{ByteStream, Change, ChangeKind, ExtractOptions, PathStat};
pub use container::{
    ContainerFiles, ContainerSpec, CreatedContainer, ExecSpec, GraphDriver, LogRotation, MountSpec,
    NetworkEndpoint, NetworkSpec, PortBinding, ProcessSpec, Protocol, PublishedPort, Reconnected,
    ResourceStats, Resources, Security, TopProcess, WritableLayer,
};
pub use registry::{Backends, Isolation, Unavailable};
pub use vm::SharedVmStatus;
pub use vmrun_shim::ExitStatus;

/// Errors of a backend.
#[derive(Debug, Clone, thiserror::Error)]
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
    async fn create(&self, c: &ContainerSpec) -> Result<CreatedContainer, BackendError>;
    /// Create an exec process in a running container.
    async fn create_exec(
        &self,
        c: &ContainerSpec,
        spec: &ExecSpec,
    ) -> Result<Arc<dyn ProcessHandle>, BackendError>;
    /// Find the process of a container that ran before the daemon restarted.
    async fn reconnect(&self, c: &ContainerSpec) -> Result<Reconnected, BackendError>;
    /// Release what the last run held (network endpoint, published ports).
    async fn release(&self, c: &ContainerSpec);
    /// Delete the container's writable layer and files.
    async fn remove(&self, c: &ContainerSpec) -> Result<(), BackendError>;
    /// Send a signal to the container's init.
    async fn kill(&self, c: &ContainerSpec, signal: i32) -> Result<(), BackendError>;
    /// Resource usage.
    async fn stats(&self, c: &ContainerSpec) -> Result<ResourceStats, BackendError>;
    /// Host pids of the container's processes.
    async fn pids(&self, c: &ContainerSpec) -> Result<Vec<i32>, BackendError>;
    /// The container's processes where they are not host processes (a microVM's);
    /// `None` (the default): `docker top` reads the host's `/proc` for [`Self::pids`].
    async fn top(&self, _c: &ContainerSpec) -> Result<Option<Vec<TopProcess>>, BackendError> {
        Ok(None)
    }
    /// Where the container's files are (no I/O): for inspect, logs, commit, disk usage.
    fn files(&self, c: &ContainerSpec) -> ContainerFiles;
    /// The writable layer in overlayfs form on this host, for `commit` and build steps:
    /// by default the directory [`Self::files`] names; a copy for containers in VMs.
    async fn writable_layer(
        &self,
        c: &ContainerSpec,
    ) -> Result<Option<WritableLayer>, BackendError> {
        Ok(self.files(c).writable_layer.map(WritableLayer::at))
    }
    /// `docker cp`: the stat of `path` in the container (symlinks resolved inside it, the
    /// last component not followed). [`BackendError::NotFound`]: no such file.
    async fn path_stat(&self, _c: &ContainerSpec, _path: &str) -> Result<PathStat, BackendError> {
        Err(unsupported("docker cp"))
    }
    /// `docker cp` out of the container: `path`'s stat and a tar of it.
    async fn archive(
        &self,
        _c: &ContainerSpec,
        _path: &str,
    ) -> Result<(PathStat, ByteStream), BackendError> {
        Err(unsupported("docker cp"))
    }
    /// `docker cp` into the container: extract `tar` into directory `path`.
    async fn extract(
        &self,
        _c: &ContainerSpec,
        _path: &str,
        _opts: ExtractOptions,
        _tar: ByteStream,
    ) -> Result<(), BackendError> {
        Err(unsupported("docker cp"))
    }
    /// `docker export`: a tar of the container's root file system.
    async fn export(&self, _c: &ContainerSpec) -> Result<ByteStream, BackendError> {
        Err(unsupported("docker export"))
    }
    /// `docker diff`: the changes in the container's writable layer.
    async fn changes(&self, _c: &ContainerSpec) -> Result<Vec<Change>, BackendError> {
        Err(unsupported("docker diff"))
    }
    /// Freeze every process of the container.
    async fn pause(&self, _c: &ContainerSpec) -> Result<(), BackendError> {
        Err(unsupported("docker pause"))
    }
    /// Thaw a paused container.
    async fn unpause(&self, _c: &ContainerSpec) -> Result<(), BackendError> {
        Err(unsupported("docker unpause"))
    }
    /// Apply changed resource limits to a running container (only the `Some` fields).
    async fn update(&self, _c: &ContainerSpec, _changed: &Resources) -> Result<(), BackendError> {
        Err(unsupported("docker update"))
    }
    /// Connect a running container to one more network, with aliases there.
    async fn connect_network(
        &self,
        _c: &ContainerSpec,
        _network: &str,
        _aliases: &[String],
    ) -> Result<NetworkEndpoint, BackendError> {
        Err(BackendError::BadRequest(
            "connecting a running container to a network is not supported for this isolation"
                .into(),
        ))
    }
    /// Disconnect a running container from one of its networks.
    async fn disconnect_network(
        &self,
        _c: &ContainerSpec,
        _network: &str,
    ) -> Result<(), BackendError> {
        Err(BackendError::BadRequest(
            "disconnecting a running container from a network is not supported for this isolation"
                .into(),
        ))
    }
}

/// What a backend answers for an operation it does not have.
fn unsupported(what: &str) -> BackendError {
    BackendError::Failed(format!(
        "{what} is not supported for containers in microVMs yet"
    ))
}

/// `vmrun vm status|start|stop`: the daemon's shared VM.
#[async_trait]
pub trait SharedVmControl: Send + Sync {
    /// Where it stands.
    async fn status(&self) -> SharedVmStatus;
    /// Boots it unless it runs.
    async fn start(&self) -> Result<SharedVmStatus, BackendError>;
    /// Shuts it down cleanly (its containers stopped first); false when it was not running.
    async fn stop(&self) -> bool;
    /// Removes named volume `name`'s data from the VM's disk (now, or at its next boot).
    async fn remove_volume(&self, name: &str) -> Result<(), BackendError>;
    /// Removes the layer images (host cache and the VM's disk) of layers the image store
    /// no longer has.
    async fn prune_layers(&self);
}

/// The backends of a daemon on this host: native containers, and containers in microVMs
/// (one each, or the shared VM) when the daemon has a VM backend, a guest kernel and an
/// agent initramfs (else why not), with the shared VM's control.
pub fn host_backends(
    config: &crate::config::DaemonConfig,
    network: Arc<vmrun_network::NetworkManager>,
    vm: &crate::vm::VmSupport,
) -> (Backends, Option<Arc<dyn SharedVmControl>>) {
    let backends = Backends::new().with(
        Isolation::Native,
        Arc::new(native::NativeBackend::new(config.clone(), network.clone())),
    );
    let Some(monitor) = vm.backend() else {
        let reason = vm.unavailable().unwrap_or("no VM backend on this host");
        let backends = backends
            .without(Isolation::Vm, reason)
            .without(Isolation::SharedVm, reason);
        return (backends, None);
    };
    match vm::GuestAssets::find(config) {
        Ok(assets) => {
            tracing::info!(
                kernel = %assets.kernel.display(),
                initrd = %assets.initrd.display(),
                "containers in microVMs available ({})",
                monitor.name()
            );
            let (per_container, shared) =
                vm::vm_backends(config, monitor.clone(), vm.accelerator(), assets, network);
            let backends = backends
                .with(Isolation::Vm, per_container)
                .with(Isolation::SharedVm, shared.clone());
            (backends, Some(shared))
        }
        Err(why) => {
            tracing::warn!("containers in microVMs unavailable: {why}");
            let backends = backends
                .without(Isolation::Vm, why.clone())
                .without(Isolation::SharedVm, why);
            (backends, None)
        }
    }
}
