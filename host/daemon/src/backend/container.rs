//! What the engine tells a backend about a container, and what a backend gives back:
//! backend-neutral types, free of the daemon's on-disk record and of host specifics
//! (cgroups, overlayfs, network namespaces).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::ProcessHandle;

/// Everything a backend needs to run one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    /// 64 hex digits.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// The hostname inside the container.
    pub hostname: String,
    /// Image layers, bottom-most first (unpacked directories of the image store).
    pub layers: Vec<PathBuf>,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// The init process.
    pub process: ProcessSpec,
    /// The network to join.
    pub network: NetworkSpec,
    /// Extra `/etc/hosts` names (`--add-host`, and `host.docker.internal`).
    pub extra_hosts: Vec<vmrun_network::ExtraHost>,
    /// Ports to publish on the host.
    pub ports: Vec<PortBinding>,
    /// `-P`: every exposed port is in [`Self::ports`] already; a container in a VM also
    /// has every port it listens on forwarded as it appears.
    pub publish_all: bool,
    /// Binds and volumes (host paths).
    pub mounts: Vec<MountSpec>,
    /// Resource limits.
    pub resources: Resources,
    /// Privileges.
    pub security: Security,
    /// The init's pid as the backend reported it at start; 0 when not running.
    pub pid: i32,
    /// How its json-file log rotates; `None`: it grows.
    pub log_rotation: Option<LogRotation>,
}

/// `--log-opt max-size` / `max-file` of the json-file log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogRotation {
    /// Bytes a log file may reach.
    pub max_size: u64,
    /// Files kept, the current one included.
    pub max_files: u32,
}

impl From<LogRotation> for vmrun_shim::logfile::Rotation {
    fn from(r: LogRotation) -> Self {
        vmrun_shim::logfile::Rotation {
            max_size: r.max_size,
            max_files: r.max_files,
        }
    }
}

impl ContainerSpec {
    /// First 12 hex digits of the id.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// A container's init process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSpec {
    /// Command and arguments.
    pub args: Vec<String>,
    /// Environment (`K=V`), as configured (the backend adds `PATH`, `HOSTNAME`, `TERM`).
    pub env: Vec<String>,
    /// Working directory, or `/`.
    pub cwd: Option<String>,
    /// User (`name`, `uid`, `uid:gid`), resolved in the container.
    pub user: Option<String>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub open_stdin: bool,
    /// Close stdin after the first attach ends.
    pub stdin_once: bool,
    /// Initial terminal size `[height, width]`.
    pub console_size: Option<[u16; 2]>,
}

/// The network a container joins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// `bridge`, `host`, `none` or a user network's name.
    pub mode: String,
    /// Aliases on a user network.
    pub aliases: Vec<String>,
}

/// `tcp` or `udp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// Docker's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One port to publish, as asked (host address and port are checked when published).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortBinding {
    /// Port in the container.
    pub container_port: u16,
    /// Protocol.
    pub proto: Protocol,
    /// Host address; empty or `None`: every address.
    pub host_ip: Option<String>,
    /// Host port; empty or `None`: any free port.
    pub host_port: Option<String>,
}

/// A bind mount or volume, by host path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountSpec {
    /// Host path.
    pub source: PathBuf,
    /// Path in the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// A volume that is to start with the image's content at `destination` if it is
    /// empty: set at the container's first start for volumes without `nocopy`. Backends
    /// whose volumes are host directories ignore it (the engine filled them at creation).
    pub fill_from_image: bool,
}

/// Resource limits; `None` or 0: unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Memory in bytes.
    pub memory: Option<i64>,
    /// Memory + swap in bytes (-1: unlimited swap).
    pub memory_swap: Option<i64>,
    /// CPUs in units of 1e-9.
    pub nano_cpus: Option<i64>,
    /// Relative CPU weight.
    pub cpu_shares: Option<i64>,
    /// CFS quota in microseconds.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<i64>,
    /// Task limit.
    pub pids_limit: Option<i64>,
    /// CPUs the container may run on (`0-3`, `0,1`).
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    pub cpuset_mems: Option<String>,
    /// `/dev/shm` size in bytes.
    pub shm_size: Option<i64>,
}

/// Privileges of the container's processes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// All capabilities, no seccomp, no masked paths.
    pub privileged: bool,
    /// Capabilities added to docker's default set (`ALL` for every one).
    pub cap_add: Vec<String>,
    /// Capabilities dropped (`ALL` for every one).
    pub cap_drop: Vec<String>,
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

/// A container's init process, created and not yet started, with what was set up for it.
pub struct CreatedContainer {
    /// The process.
    pub process: Arc<dyn ProcessHandle>,
    /// Pid of the monitor process (the native backend's shim), 0 if none.
    pub monitor_pid: i32,
    /// Its network endpoint.
    pub endpoint: Option<NetworkEndpoint>,
    /// Its published ports.
    pub ports: Vec<PublishedPort>,
    /// The ports forwarded automatically as they change (containers in VMs with
    /// automatic forwarding), shown next to `ports` while the container runs.
    pub auto_ports: Option<tokio::sync::watch::Receiver<Vec<PublishedPort>>>,
}

/// A container's address on its network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkEndpoint {
    /// Network name.
    pub network: String,
    /// Network id.
    pub network_id: String,
    /// Endpoint id.
    pub endpoint_id: String,
    /// IPv4 address.
    pub ip: String,
    /// Prefix length.
    pub prefix_len: u8,
    /// Gateway.
    pub gateway: String,
    /// MAC address.
    pub mac: String,
}

/// A port published on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishedPort {
    /// Host address listened on.
    pub host_ip: String,
    /// Host port (the actual one when any was asked).
    pub host_port: u16,
    /// Port in the container.
    pub container_port: u16,
    /// Protocol.
    pub proto: Protocol,
}

/// Resource usage of a container, whichever backend measures it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceStats {
    /// Memory in use, bytes.
    pub memory_usage: u64,
    /// Peak memory use, bytes (0: unknown).
    pub memory_max_usage: u64,
    /// Memory limit in bytes; `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Page cache, bytes.
    pub memory_cache: u64,
    /// CPU time, nanoseconds.
    pub cpu_usage_ns: u64,
    /// User CPU time, nanoseconds.
    pub cpu_user_ns: u64,
    /// System CPU time, nanoseconds.
    pub cpu_system_ns: u64,
    /// Number of tasks.
    pub pids_current: u64,
    /// Task limit; `None` when unlimited.
    pub pids_limit: Option<u64>,
}

/// A container's writable layer in overlayfs form on this host (whiteouts as 0:0
/// character devices, opaque directories marked with `trusted.overlay.opaque`), for
/// `commit` and build steps: the backend's own directory, or a copy fetched from a VM,
/// which goes when this is dropped.
pub struct WritableLayer {
    /// The directory.
    pub path: PathBuf,
    _keep: Option<Box<dyn Send + Sync>>,
}

impl WritableLayer {
    /// The backend's own directory.
    pub fn at(path: PathBuf) -> Self {
        WritableLayer { path, _keep: None }
    }

    /// A directory that lasts as long as `keep` (a temporary directory, a mount).
    pub fn kept_by(path: PathBuf, keep: impl Send + Sync + 'static) -> Self {
        WritableLayer {
            path,
            _keep: Some(Box::new(keep)),
        }
    }
}

impl std::fmt::Debug for WritableLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WritableLayer")
            .field("path", &self.path)
            .finish()
    }
}

/// Where a container's files are on this host, for `inspect`, logs, `commit` and disk
/// usage. `None`: the backend has no such file on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFiles {
    /// The json-file log the engine reads for `logs`.
    pub log: PathBuf,
    /// `/etc/hosts`.
    pub hosts: Option<PathBuf>,
    /// `/etc/hostname`.
    pub hostname: Option<PathBuf>,
    /// `/etc/resolv.conf`.
    pub resolv_conf: Option<PathBuf>,
    /// The network sandbox (`SandboxKey`) while the container has an endpoint.
    pub sandbox: Option<PathBuf>,
    /// The writable layer as a directory of changes (overlayfs upper dir): what `commit`
    /// packs and disk usage counts.
    pub writable_layer: Option<PathBuf>,
    /// Docker's `GraphDriver`.
    pub graph_driver: Option<GraphDriver>,
}

/// Docker's `GraphDriver` of a container: the storage driver and its directories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphDriver {
    /// Driver name (`overlay2`).
    pub name: String,
    /// `LowerDir`, `UpperDir`, `WorkDir`, `MergedDir`.
    pub data: BTreeMap<String, String>,
}

/// What [`super::ContainerBackend::reconnect`] found.
pub enum Reconnected {
    /// Still running: watch it again.
    Running(Arc<dyn ProcessHandle>),
    /// Ended while the daemon was away.
    Exited(super::ExitStatus),
    /// Gone without a record of its exit.
    Lost,
}

/// One process of a container, as a backend that cannot show host pids reports it
/// (`docker top` inside a microVM).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopProcess {
    /// Pid where the process runs (the guest's).
    pub pid: i32,
    /// Parent pid there.
    pub ppid: i32,
    /// Real user id.
    pub uid: u32,
    /// Command line.
    pub cmd: String,
}
