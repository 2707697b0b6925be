//! A container's docker configuration as the daemon saves it: docker's `Config` and
//! `HostConfig` documents in the Engine API's own JSON shape (a public, versioned wire
//! format), not a client crate's Rust types.
//!
//! The fields the daemon acts on are typed; every other field the client sent is kept,
//! untouched, in `rest` and given back by `inspect`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Docker's `Config` of a container (image defaults merged in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerConfig {
    /// `--hostname`.
    #[serde(rename = "Hostname", default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `--user`.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `--tty`.
    #[serde(rename = "Tty", default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// `--interactive`.
    #[serde(rename = "OpenStdin", default, skip_serializing_if = "Option::is_none")]
    pub open_stdin: Option<bool>,
    /// Close stdin after the first attach ends.
    #[serde(rename = "StdinOnce", default, skip_serializing_if = "Option::is_none")]
    pub stdin_once: Option<bool>,
    /// Environment (`K=V`).
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Command.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<HashMap<String, String>>,
    /// Signal that stops the container.
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    /// Seconds between the stop signal and SIGKILL.
    #[serde(
        rename = "StopTimeout",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_timeout: Option<i64>,
    /// The image as the user named it.
    #[serde(rename = "Image", default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Every other field, as the client sent it.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl DockerConfig {
    /// The keys of `ExposedPorts` (`"80/tcp"`).
    pub fn exposed_ports(&self) -> Vec<String> {
        match self.rest.get("ExposedPorts") {
            Some(Value::Object(ports)) => ports.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

/// One host binding of a published port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerPortBinding {
    /// Host address (empty or absent: every address).
    #[serde(rename = "HostIp", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Host port (empty or absent: any free port).
    #[serde(rename = "HostPort", default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<String>,
}

/// Docker's `HostConfig` of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerHostConfig {
    /// `--privileged`.
    #[serde(
        rename = "Privileged",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub privileged: Option<bool>,
    /// `--read-only`.
    #[serde(
        rename = "ReadonlyRootfs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub readonly_rootfs: Option<bool>,
    /// `--rm`.
    #[serde(
        rename = "AutoRemove",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub auto_remove: Option<bool>,
    /// Memory limit in bytes (0: none).
    #[serde(rename = "Memory", default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Memory + swap limit (-1: unlimited swap).
    #[serde(
        rename = "MemorySwap",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_swap: Option<i64>,
    /// `--cpus` in units of 1e-9 CPUs.
    #[serde(rename = "NanoCpus", default, skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    /// Relative CPU weight.
    #[serde(rename = "CpuShares", default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// CFS quota in microseconds.
    #[serde(rename = "CpuQuota", default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[serde(rename = "CpuPeriod", default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    /// Task limit.
    #[serde(rename = "PidsLimit", default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Size of `/dev/shm` in bytes.
    #[serde(rename = "ShmSize", default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    /// Capabilities added.
    #[serde(rename = "CapAdd", default, skip_serializing_if = "Option::is_none")]
    pub cap_add: Option<Vec<String>>,
    /// Capabilities dropped.
    #[serde(rename = "CapDrop", default, skip_serializing_if = "Option::is_none")]
    pub cap_drop: Option<Vec<String>>,
    /// Published ports: `"80/tcp"` to its host bindings.
    #[serde(
        rename = "PortBindings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub port_bindings: Option<HashMap<String, Option<Vec<DockerPortBinding>>>>,
    /// Initial terminal size `[height, width]`.
    #[serde(
        rename = "ConsoleSize",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub console_size: Option<Vec<usize>>,
    /// Network to join.
    #[serde(
        rename = "NetworkMode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_mode: Option<String>,
    /// `--isolation`, as asked.
    #[serde(rename = "Isolation", default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// `--runtime`, as asked.
    #[serde(rename = "Runtime", default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Every other field, as the client sent it.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}
