//! The loaded project: every service in one normalized form (long syntax, absolute
//! paths, `env_file` read into `environment`), the networks and volumes with their engine
//! names, and the labels and names docker compose gives its objects.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// Label: the project name.
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
/// Label: the service name.
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
/// Label: the container's number within its service (1, 2, ...).
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
/// Label: the service configuration hash ([`crate::config_hash`]).
pub const LABEL_CONFIG_HASH: &str = "com.docker.compose.config-hash";
/// Label: `True` for `run` containers, `False` otherwise.
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
/// Label: the project's working directory.
pub const LABEL_WORKING_DIR: &str = "com.docker.compose.project.working_dir";
/// Label: the compose files, comma-separated.
pub const LABEL_CONFIG_FILES: &str = "com.docker.compose.project.config_files";
/// Label: the compose implementation's version.
pub const LABEL_VERSION: &str = "com.docker.compose.version";
/// Label of networks: the key under `networks`.
pub const LABEL_NETWORK: &str = "com.docker.compose.network";
/// Label of volumes: the key under `volumes`.
pub const LABEL_VOLUME: &str = "com.docker.compose.volume";

/// A loaded, validated project.
#[derive(Debug, Clone, Serialize)]
pub struct Project {
    /// The project name (`-p`, `COMPOSE_PROJECT_NAME`, `name:`, or the directory).
    pub name: String,
    /// The directory relative paths are resolved against.
    pub working_dir: PathBuf,
    /// The files, in the order merged.
    pub config_files: Vec<PathBuf>,
    /// Enabled services by name.
    pub services: BTreeMap<String, Service>,
    /// Networks by key (with `default` when a service uses it).
    pub networks: BTreeMap<String, Resource>,
    /// Named volumes by key.
    pub volumes: BTreeMap<String, Resource>,
    /// Services left out by profiles.
    #[serde(skip)]
    pub disabled: Vec<String>,
}

/// A top-level network or volume.
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    /// The engine's name.
    pub name: String,
    /// Made elsewhere: never created or removed.
    pub external: bool,
    /// Driver, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// User labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// How a service is built.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    /// Absolute context directory.
    pub context: PathBuf,
    /// Dockerfile, relative to the context (default `Dockerfile`).
    pub dockerfile: String,
    /// Build arguments.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// Target stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Image labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One published port, `[ip:][host:]container[/proto]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    /// Container port.
    pub target: u16,
    /// Host port or range; empty for any.
    pub published: String,
    /// Host address; empty for all.
    pub host_ip: String,
    /// `tcp` or `udp`.
    pub protocol: String,
}

impl Port {
    /// The `docker run -p` form.
    pub fn spec(&self) -> String {
        let mut out = String::new();
        if !self.host_ip.is_empty() {
            out.push_str(&self.host_ip);
            out.push(':');
        }
        if !self.published.is_empty() || !self.host_ip.is_empty() {
            out.push_str(&self.published);
            out.push(':');
        }
        out.push_str(&format!("{}/{}", self.target, self.protocol));
        out
    }
}

/// What a mount's source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A named (or anonymous, with no source) volume.
    Volume,
    /// A host path.
    Bind,
    /// A tmpfs.
    Tmpfs,
}

/// One entry of a service's `volumes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// Volume, bind or tmpfs.
    #[serde(rename = "type")]
    pub kind: MountKind,
    /// For a volume: the key under top-level `volumes` (empty: anonymous); for a bind:
    /// the absolute host path.
    pub source: String,
    /// Path in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
}

/// The condition a dependency must reach before a service starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Its containers are started.
    ServiceStarted,
    /// Its containers are healthy.
    ServiceHealthy,
    /// Its containers exited with status 0.
    ServiceCompletedSuccessfully,
}

/// One `depends_on` entry.
#[derive(Debug, Clone, Serialize)]
pub struct Dependency {
    /// What to wait for.
    pub condition: Condition,
    /// Whether a missing dependency is an error.
    pub required: bool,
}

/// A service's place on one network.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceNetwork {
    /// More names on this network.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// `healthcheck`, durations in nanoseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Healthcheck {
    /// The test (`["CMD", ...]`, `["CMD-SHELL", ...]`, `["NONE"]`).
    pub test: Vec<String>,
    /// Interval (ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Timeout (ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Start period (ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// Start interval (ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// Retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// One service, normalized.
#[derive(Debug, Clone, Default, Serialize)]
#[allow(missing_docs)]
pub struct Service {
    pub name: String,
    /// The image to run; for a service with `build` and no `image`,
    /// `<project>-<service>` (compose v2's name).
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Variables; `None` values come from the environment or are dropped.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    /// Networks by key; empty when `network_mode` is set.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, ServiceNetwork>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The number of containers (`scale`, or `deploy.replicas`; default 1).
    pub replicas: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Stop grace period (ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
}

impl Project {
    /// The container name of number `n` of `service` (compose v2: `<project>-<service>-<n>`),
    /// or its `container_name`.
    pub fn container_name(&self, service: &Service, number: u32) -> String {
        match &service.container_name {
            Some(name) => name.clone(),
            None => format!("{}-{}-{number}", self.name, service.name),
        }
    }

    /// The engine name of a service's network key.
    pub fn network_name(&self, key: &str) -> String {
        self.networks
            .get(key)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| format!("{}_{key}", self.name))
    }

    /// The engine name of a volume key.
    pub fn volume_name(&self, key: &str) -> String {
        self.volumes
            .get(key)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| format!("{}_{key}", self.name))
    }

    /// The labels every object of the project carries (`project`, `working_dir`,
    /// `config_files`, `version`).
    pub fn project_labels(&self, version: &str) -> BTreeMap<String, String> {
        let files: Vec<String> = self
            .config_files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        BTreeMap::from([
            (LABEL_PROJECT.to_owned(), self.name.clone()),
            (
                LABEL_WORKING_DIR.to_owned(),
                self.working_dir.display().to_string(),
            ),
            (LABEL_CONFIG_FILES.to_owned(), files.join(",")),
            (LABEL_VERSION.to_owned(), version.to_owned()),
        ])
    }
}
