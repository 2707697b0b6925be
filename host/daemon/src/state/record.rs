//! What the daemon remembers about one container (the current record version; see
//! [`super::file`] for the file around it and [`super::migrate`] for earlier versions).

use serde::{Deserialize, Serialize};

use super::docker::{DockerConfig, DockerHostConfig};
use crate::backend::Isolation;

/// A container's lifecycle state, as docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started (or failed to start).
    #[default]
    Created,
    /// Its process runs.
    Running,
    /// Its process has ended.
    Exited,
    /// Being removed.
    Removing,
    /// Could not be removed completely.
    Dead,
}

impl Status {
    /// Docker's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Removing => "removing",
            Status::Dead => "dead",
        }
    }
}

/// The changing part of a container's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// Lifecycle state.
    pub status: Status,
    /// Host pid of the container's init while it runs, else 0.
    pub pid: i32,
    /// Pid of the process that watches it (a shim), 0 if none.
    pub monitor_pid: i32,
    /// Exit code of the last run.
    pub exit_code: i32,
    /// Last start (RFC 3339); docker's zero time when never started.
    pub started_at: Option<String>,
    /// Last exit (RFC 3339).
    pub finished_at: Option<String>,
    /// The last run ended through the OOM killer.
    pub oom_killed: bool,
    /// Why the last start failed.
    pub error: String,
    /// The container was stopped by the API (not by itself).
    pub stopped_by_user: bool,
    /// Its processes are frozen (`docker pause`); only while running.
    #[serde(default)]
    pub paused: bool,
}

/// The network endpoint of a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
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

/// One published port of a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPortState {
    /// Host address listened on.
    pub host_ip: String,
    /// Host port (the actual one when 0 was asked).
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub proto: String,
}

/// A bind mount or volume of a container, resolved at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountState {
    /// `bind` or `volume`.
    pub kind: String,
    /// Volume name (volumes only).
    pub name: Option<String>,
    /// Host path.
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Writable.
    pub rw: bool,
    /// A volume (not `nocopy`) that starts with the image's content at its mount point
    /// when it is empty: done at creation where volumes are host directories, at the
    /// first start in the shared VM (whose volumes are on its data disk). Written only
    /// when true, so older records read and write back unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fill: bool,
}

/// One more network a container is on, beyond `network_mode` (`network connect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// Network name.
    pub network: String,
    /// Aliases on it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Endpoint while running (kept after exit, as for the first network).
    #[serde(default)]
    pub endpoint: Option<EndpointState>,
}

/// One run of a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthLogEntry {
    /// Start (RFC 3339).
    pub start: String,
    /// End (RFC 3339).
    pub end: String,
    /// Exit code (-1: could not run or timed out).
    pub exit_code: i64,
    /// Output, at most 4 KiB.
    pub output: String,
}

/// Docker's `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Consecutive failures.
    pub failing_streak: u32,
    /// The last five runs.
    pub log: Vec<HealthLogEntry>,
}

/// Everything persisted about one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Creation time (RFC 3339).
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    /// The image's id (`sha256:...`).
    pub image_id: String,
    /// How it is isolated, which decides its backend.
    pub isolation: Isolation,
    /// Unpacked image layers, bottom-most first.
    pub layers: Vec<std::path::PathBuf>,
    /// The command: `path` and `args`, after merging entrypoint and cmd.
    pub path: String,
    /// Arguments after `path`.
    pub args: Vec<String>,
    /// Docker's `Config`, image defaults merged in.
    pub config: DockerConfig,
    /// Docker's `HostConfig`.
    pub host_config: DockerHostConfig,
    /// Network to join (`bridge`, `host`, `none`, a user network).
    pub network_mode: String,
    /// Aliases on a user network.
    pub aliases: Vec<String>,
    /// The changing state.
    pub state: RunState,
    /// Endpoint while running (kept after exit for inspect, as docker does).
    pub endpoint: Option<EndpointState>,
    /// Published ports while running.
    pub ports: Vec<PublishedPortState>,
    /// Binds and volumes.
    pub mounts: Vec<MountState>,
    /// How many times the daemon restarted it.
    pub restart_count: u32,
    /// Networks beyond `network_mode`.
    #[serde(default)]
    pub extra_networks: Vec<NetworkAttachment>,
    /// Health while it runs with a health check.
    #[serde(default)]
    pub health: Option<HealthState>,
}

impl ContainerRecord {
    /// First 12 hex digits.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    /// Whether the process runs.
    pub fn is_running(&self) -> bool {
        self.state.status == Status::Running
    }

    /// Whether the container has a terminal.
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }
}
