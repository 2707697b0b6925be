//! The messages: the hello exchange, control requests and their replies.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::StreamTarget;

/// First frame on every connection, client → agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks ([`crate::PROTOCOL_VERSION`]).
    pub version: u32,
    /// Who is calling, for the agent's log (`"vmrund 0.1.0"`, `"test"`).
    #[serde(default)]
    pub client: String,
    /// The host's wall clock (nanoseconds since the Unix epoch). The agent sets its clock
    /// from it when it is off by more than [`crate::CLOCK_SLACK_MS`]; `None` leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_time_unix_nanos: Option<i64>,
}

/// The agent's answer to a [`Hello`]; after `Refused` the agent closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HelloReply {
    /// Same version: requests may follow.
    Welcome {
        /// The agent's protocol version (equal to the client's).
        version: u32,
        /// The agent's build (`vmrun-agent 0.1.0`).
        agent: String,
        /// `uname -r` where the agent runs.
        kernel_release: String,
        /// Whether the hello's host time moved the agent's clock.
        clock_adjusted: bool,
    },
    /// Another version, or no hello at all.
    Refused {
        /// The agent's protocol version.
        version: u32,
        /// Why, for humans (names both versions on a mismatch).
        message: String,
    },
}

/// A control request. Several may be in flight on one connection; replies carry the id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client, echoed in the [`Response`].
    pub id: u64,
    /// What to do.
    pub op: Op,
}

/// The reply to one [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id; `None` when the request could not be read far enough to know it
    /// (a malformed or oversized frame).
    pub id: Option<u64>,
    /// The outcome.
    pub result: Result<Reply, AgentError>,
}

/// Control operations. "id" is a container id or an exec id: both name a process the
/// agent watches through its own `vmrun-shim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// Liveness. Reply: [`Reply::Pong`].
    Ping,
    /// Versions (and the agent's own memory use). Reply: [`Reply::Version`].
    Version,
    /// Set the guest clock if it is off by more than [`crate::CLOCK_SLACK_MS`].
    /// Reply: [`Reply::TimeSet`].
    SetTime {
        /// Host wall clock, nanoseconds since the Unix epoch.
        unix_nanos: i64,
    },
    /// Sync, unmount, then end the VM. Reply: [`Reply::Done`], sent before the action.
    Shutdown {
        /// What to do at the end.
        #[serde(default)]
        action: ShutdownAction,
    },
    /// Mount a read-only ext4 layer at [`crate::layer_path`]`(id)`: a layer disk, or an
    /// ext4 image file the host stored on the data disk ([`StreamTarget::PutFile`]), which
    /// the agent attaches to a loop device. Reply: [`Reply::Mounted`] (also when it was
    /// mounted already); [`ErrorKind::NotFound`] when `device` does not exist.
    MountLayer {
        /// Block device (`/dev/vdb`) or ext4 image file in the guest.
        device: PathBuf,
        /// Layer id (`[A-Za-z0-9_.-]`, at most 128 characters; a digest's hex works).
        id: String,
    },
    /// Mount the writable ext4 data disk (formatted by the host) at [`crate::DATA_DIR`],
    /// its file system grown online to fill the device when the host made the disk larger.
    /// Reply: [`Reply::Mounted`].
    MountDataDisk {
        /// Block device in the guest.
        device: PathBuf,
    },
    /// Remove a file or directory tree under [`crate::DATA_DIR`] (a stopped container's
    /// writable layer, a layer image no longer wanted). Reply: [`Reply::Done`], also when
    /// nothing was there.
    RemoveData {
        /// Relative to [`crate::DATA_DIR`]; plain names only (no `..`, not absolute).
        path: PathBuf,
    },
    /// Make a directory (and its parents) under [`crate::DATA_DIR`] (a named volume's
    /// data directory). Reply: [`Reply::Done`], also when it exists.
    MakeDataDir {
        /// Relative to [`crate::DATA_DIR`]; plain names only (no `..`, not absolute).
        path: PathBuf,
    },
    /// Fill an empty volume on the data disk from an image ([`crate::FillDataDir`]).
    /// Reply: [`Reply::Filled`].
    FillDataDir(Box<crate::FillDataDir>),
    /// Names in a directory under [`crate::DATA_DIR`] (the layer images stored on the data
    /// disk). Reply: [`Reply::Names`], empty when the directory does not exist.
    ListData {
        /// Relative to [`crate::DATA_DIR`]; plain names only (no `..`, not absolute).
        path: PathBuf,
    },
    /// Forget a layer stored on the data disk: unmount it from [`crate::layer_path`]`(id)`
    /// if mounted (its loop device goes with the last mount) and remove
    /// `layers/<id>.ext4`. Reply: [`Reply::Done`], also when neither was there;
    /// [`ErrorKind::Conflict`] while a container still uses it.
    RemoveLayer {
        /// Layer id, as for [`Op::MountLayer`].
        id: String,
    },
    /// Create a container (created, not started). Reply: [`Reply::Created`].
    Create(Box<CreateContainer>),
    /// Create an exec process in a running container. Reply: [`Reply::Created`].
    Exec(Box<CreateExec>),
    /// Start a created container or exec. Reply: [`Reply::Started`].
    Start {
        /// Container or exec id.
        id: String,
    },
    /// Wait until the process has exited. Reply: [`Reply::Exited`].
    Wait {
        /// Container or exec id.
        id: String,
    },
    /// Send a signal to the process. Reply: [`Reply::Done`].
    Kill {
        /// Container or exec id.
        id: String,
        /// Signal number.
        signal: i32,
    },
    /// Resize the process's terminal. Reply: [`Reply::Done`].
    Resize {
        /// Container or exec id.
        id: String,
        /// Rows.
        height: u16,
        /// Columns.
        width: u16,
    },
    /// Forget a container (and its execs); running ones need `force` (SIGKILL first).
    /// Reply: [`Reply::Done`].
    Delete {
        /// Container id.
        id: String,
        /// Kill it first if it runs.
        #[serde(default)]
        force: bool,
    },
    /// Read the log: the whole json-file content. Reply: [`Reply::Logs`]. For large logs or
    /// following, open a [`StreamTarget::Logs`] stream instead.
    Logs {
        /// Container id.
        id: String,
    },
    /// cgroup figures. Reply: [`Reply::Stats`].
    Stats {
        /// Container id.
        id: String,
    },
    /// Freeze the container's cgroup (`frozen`, `docker pause`) or thaw it. Reply:
    /// [`Reply::Done`] once the kernel says it is (un)frozen.
    Freeze {
        /// Container id.
        id: String,
        /// Freeze, or thaw.
        frozen: bool,
    },
    /// Change the container's cgroup limits (`docker update`). Reply: [`Reply::Done`].
    UpdateResources {
        /// Container id.
        id: String,
        /// An OCI `linux.resources` object; what it leaves out stays as it is.
        resources: serde_json::Value,
    },
    /// Join a created or running container to a user network's bridge in the guest (made
    /// if missing, no address: nothing routes between networks) through a veth pair, its
    /// side named, addressed and up as `link` says. Reply: [`Reply::Done`].
    ConnectNetwork {
        /// Container id.
        id: String,
        /// The bridge and the container's side.
        link: crate::network::NetworkLink,
    },
    /// Delete a container's veth pair by its bridge side's name. Reply: [`Reply::Done`],
    /// also when it is gone.
    DisconnectNetwork {
        /// Container id.
        id: String,
        /// [`crate::network::NetworkLink::host_veth`].
        host_veth: String,
    },
    /// Rewrite a container's `/etc/hosts` in place (it is bound into the container).
    /// Reply: [`Reply::Done`]; [`ErrorKind::NotFound`] when it was created without one.
    WriteHosts {
        /// Container id.
        id: String,
        /// The new text.
        hosts: String,
    },
    /// The container's processes. Reply: [`Reply::Top`].
    Top {
        /// Container id.
        id: String,
    },
    /// Containers and execs the agent knows. Reply: [`Reply::List`].
    List,
    /// Turn this connection into a raw byte stream; must be the first request after the
    /// hello. Reply: [`Reply::StreamReady`], then raw bytes both ways.
    OpenStream {
        /// What the bytes are.
        target: StreamTarget,
    },
}

/// How [`Op::Shutdown`] ends the VM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownAction {
    /// `reboot(RB_AUTOBOOT)`: with `reboot=k` and `-no-reboot` / our VMM, the VM ends.
    /// This is what `vmrun-vm` expects (under QEMU `microvm,acpi=off` a power-off only
    /// halts the CPUs).
    #[default]
    Reboot,
    /// `reboot(RB_POWER_OFF)`.
    PowerOff,
}

/// The rotation of a container's json-file log, as docker's `max-size` and `max-file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRotation {
    /// Rotate before a record would take the file past this many bytes.
    pub max_size: u64,
    /// Files kept, the current one included; 1 keeps only the current file, emptied
    /// when full.
    pub max_files: u32,
}

/// Where a container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsSpec {
    /// Read-only layer directories in the guest, bottom-most first (e.g. mounted layers).
    pub layers: Vec<PathBuf>,
    /// A directory for the writable layer (`upper/` and `work/` are made inside it, same
    /// filesystem); `None` puts it on the guest's tmpfs, lost when the VM stops.
    #[serde(default)]
    pub writable: Option<PathBuf>,
}

/// [`Op::Create`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateContainer {
    /// Container id (`[A-Za-z0-9_.-]`, at most 128 characters).
    pub id: String,
    /// The OCI runtime spec (`config.json`); `root.path` is replaced by the agent.
    pub spec: serde_json::Value,
    /// The root filesystem.
    pub rootfs: RootfsSpec,
    /// Docker-style user (`name`, `uid`, `name:group`, `uid:gid`), resolved in the image.
    #[serde(default)]
    pub user: Option<String>,
    /// The process gets a pseudo-terminal.
    #[serde(default)]
    pub tty: bool,
    /// Keep stdin open for attach streams.
    #[serde(default)]
    pub open_stdin: bool,
    /// Close stdin when the first attached stdin ends.
    #[serde(default)]
    pub stdin_once: bool,
    /// Initial terminal size `[height, width]`.
    #[serde(default)]
    pub console_size: Option<[u16; 2]>,
    /// json-file log path in the guest; `None` puts it in the agent's state directory.
    #[serde(default)]
    pub log_path: Option<PathBuf>,
    /// How that log rotates (`--log-opt max-size`/`max-file`); `None`: it grows. A log
    /// stream that follows it ([`crate::StreamTarget::Logs`]) follows it across rotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_rotation: Option<LogRotation>,
    /// `/etc/hosts` and `/etc/resolv.conf` to bind over the image's; `None` keeps the
    /// image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etc_files: Option<crate::network::EtcFiles>,
}

/// [`Op::Exec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateExec {
    /// The running container.
    pub container_id: String,
    /// Exec id (same rules as container ids, distinct from them).
    pub exec_id: String,
    /// The OCI `process` object.
    pub process: serde_json::Value,
    /// Keep stdin open for attach streams.
    #[serde(default)]
    pub open_stdin: bool,
    /// Initial terminal size `[height, width]` (when `process.terminal` is true).
    #[serde(default)]
    pub console_size: Option<[u16; 2]>,
}

/// Successful replies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// [`Op::Ping`].
    Pong,
    /// [`Op::Version`].
    Version {
        /// Protocol version.
        protocol: u32,
        /// The agent's build.
        agent: String,
        /// `uname -r`.
        kernel_release: String,
        /// The agent's resident memory (`VmRSS`), KiB.
        #[serde(default)]
        agent_rss_kib: u64,
    },
    /// [`Op::SetTime`].
    TimeSet {
        /// Whether the clock was moved.
        adjusted: bool,
        /// Guest minus host before the change, milliseconds.
        offset_ms: i64,
    },
    /// The request was carried out.
    Done,
    /// [`Op::ListData`]: file names, sorted.
    Names {
        /// The names.
        names: Vec<String>,
    },
    /// [`Op::FillDataDir`].
    Filled {
        /// Whether anything was copied (false: the volume had files, or the image has no
        /// directory there).
        copied: bool,
    },
    /// [`Op::MountLayer`], [`Op::MountDataDisk`].
    Mounted {
        /// Where it is mounted in the guest.
        path: PathBuf,
        /// It was mounted before this request.
        already: bool,
    },
    /// [`Op::Create`], [`Op::Exec`].
    Created {
        /// Pid of the monitor (`vmrun-shim`) in the guest.
        shim_pid: i32,
    },
    /// [`Op::Start`].
    Started {
        /// Pid of the process in the guest.
        pid: i32,
    },
    /// [`Op::Wait`].
    Exited(ExitInfo),
    /// [`Op::Logs`].
    Logs {
        /// json-file content.
        content: String,
    },
    /// [`Op::Stats`].
    Stats(ContainerStats),
    /// [`Op::Top`].
    Top {
        /// Processes, by pid.
        processes: Vec<ProcessInfo>,
    },
    /// [`Op::List`].
    List {
        /// Known processes.
        entries: Vec<ListEntry>,
    },
    /// [`Op::OpenStream`]: raw bytes follow.
    StreamReady,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code; 128 + signal when killed by one.
    pub exit_code: i32,
    /// The cgroup's OOM killer ended a process of the container.
    pub oom_killed: bool,
    /// RFC 3339 time.
    pub finished_at: String,
}

/// cgroup figures of a container (zero where the hierarchy lacks a counter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// Bytes in use.
    pub memory_usage: u64,
    /// Peak bytes.
    pub memory_max_usage: u64,
    /// Limit, if any.
    pub memory_limit: Option<u64>,
    /// Page cache bytes.
    pub memory_cache: u64,
    /// CPU time, nanoseconds.
    pub cpu_usage_ns: u64,
    /// User CPU time, nanoseconds.
    pub cpu_user_ns: u64,
    /// System CPU time, nanoseconds.
    pub cpu_system_ns: u64,
    /// Processes now.
    pub pids_current: u64,
    /// Process limit, if any.
    pub pids_limit: Option<u64>,
    /// OOM kills seen.
    pub oom_kill_count: u64,
}

/// One process of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Pid in the guest.
    pub pid: i32,
    /// Parent pid in the guest.
    pub ppid: i32,
    /// Real user id.
    pub uid: u32,
    /// Command line (arguments joined by spaces; `[comm]` when empty).
    pub cmd: String,
}

/// One entry of [`Reply::List`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// Container or exec id.
    pub id: String,
    /// The container of an exec.
    pub container_id: Option<String>,
    /// Where it is in its life.
    pub status: ProcessStatus,
    /// Pid once started.
    pub pid: Option<i32>,
}

/// The life of a container or exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatus {
    /// Created, not started.
    Created,
    /// Started, not exited.
    Running,
    /// Exited (or its monitor has).
    Exited,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct AgentError {
    /// Machine-readable class.
    pub kind: ErrorKind,
    /// For humans.
    pub message: String,
}

impl AgentError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        AgentError {
            kind,
            message: message.into(),
        }
    }
}

/// Classes of [`AgentError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The frame or request could not be read (malformed JSON, unknown op, bad field).
    BadRequest,
    /// The frame is larger than [`crate::MAX_FRAME_LEN`].
    TooLarge,
    /// The protocol versions differ.
    VersionMismatch,
    /// No such container, exec or device.
    NotFound,
    /// The id is taken.
    AlreadyExists,
    /// The object is in the wrong state (running, not started, ...).
    Conflict,
    /// The command does not exist in the container (docker: exit 127).
    CommandNotFound,
    /// The command cannot be executed (docker: exit 126).
    PermissionDenied,
    /// The named user or group is not in the image.
    BadUser,
    /// Something failed in the guest.
    Internal,
}
