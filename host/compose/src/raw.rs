//! The service and top-level entries as a compose file writes them, with every short
//! and long form the specification allows; [`crate::normalize`] turns them into the
//! model. Unknown keys are refused (`deny_unknown_fields`), and each alternative form
//! is read from a YAML value with a message that says what was expected.
//!
//! Why not a model crate: `docker-compose-types` (the one maintained crate) accepts
//! unknown keys into catch-all maps and its errors carry no key path, and both matter
//! here (an unknown key must be refused with the file, the service and the key).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_norway::Value;

/// A scalar written as a string, number or boolean (`user: 1000`), as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Value")]
pub struct Text(pub String);

impl TryFrom<Value> for Text {
    type Error = String;
    fn try_from(value: Value) -> Result<Self, String> {
        scalar_text(&value)
            .map(Text)
            .ok_or_else(|| format!("expected a string, found {}", kind(&value)))
    }
}

/// The text of a string, number or boolean.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a value is, for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// `command: echo hi` (split like a shell) or `command: [echo, hi]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Value")]
pub enum StringOrList {
    /// The shell-like form.
    Line(String),
    /// The exec form.
    List(Vec<String>),
}

impl TryFrom<Value> for StringOrList {
    type Error = String;
    fn try_from(value: Value) -> Result<Self, String> {
        match &value {
            Value::Sequence(items) => items
                .iter()
                .map(|v| {
                    scalar_text(v)
                        .ok_or_else(|| format!("expected a list of strings, found {}", kind(v)))
                })
                .collect::<Result<_, _>>()
                .map(StringOrList::List),
            other => scalar_text(other).map(StringOrList::Line).ok_or_else(|| {
                format!(
                    "expected a string or a list of strings, found {}",
                    kind(other)
                )
            }),
        }
    }
}

/// `environment`/`labels`: a mapping (`KEY: value`, a null value meaning "from the
/// environment") or a list of `KEY=value` / `KEY`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "Value")]
pub struct MapOrList(pub BTreeMap<String, Option<String>>);

impl TryFrom<Value> for MapOrList {
    type Error = String;
    fn try_from(value: Value) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        match &value {
            Value::Mapping(map) => {
                for (k, v) in map {
                    let key = scalar_text(k).ok_or("expected string keys")?;
                    let val = match v {
                        Value::Null => None,
                        other => Some(scalar_text(other).ok_or_else(|| {
                            format!(
                                "the value of {key} must be a string, number or boolean, found {}",
                                kind(other)
                            )
                        })?),
                    };
                    out.insert(key, val);
                }
            }
            Value::Sequence(items) => {
                for item in items {
                    let text = scalar_text(item).ok_or_else(|| {
                        format!("expected KEY=VALUE strings, found {}", kind(item))
                    })?;
                    match text.split_once('=') {
                        Some((k, v)) => out.insert(k.to_owned(), Some(v.to_owned())),
                        None => out.insert(text, None),
                    };
                }
            }
            other => {
                return Err(format!(
                    "expected a mapping or a list, found {}",
                    kind(other)
                ))
            }
        }
        Ok(MapOrList(out))
    }
}

/// One string or a list of them (`env_file`).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Value")]
pub struct OneOrMany(pub Vec<String>);

impl TryFrom<Value> for OneOrMany {
    type Error = String;
    fn try_from(value: Value) -> Result<Self, String> {
        match StringOrList::try_from(value)? {
            StringOrList::Line(s) => Ok(OneOrMany(vec![s])),
            StringOrList::List(l) => Ok(OneOrMany(l)),
        }
    }
}

/// `build: ./dir` or the long form.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Value")]
pub struct RawBuild(pub BuildLong);

/// The long form of `build`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildLong {
    /// The context directory.
    pub context: Option<String>,
    /// The Dockerfile, relative to the context.
    pub dockerfile: Option<String>,
    /// Build arguments.
    pub args: Option<MapOrList>,
    /// The stage to build.
    pub target: Option<String>,
    /// Labels of the image.
    pub labels: Option<MapOrList>,
}

impl TryFrom<Value> for RawBuild {
    type Error = String;
    fn try_from(value: Value) -> Result<Self, String> {
        match value {
            Value::String(context) => Ok(RawBuild(BuildLong {
                context: Some(context),
                ..BuildLong::default()
            })),
            Value::Mapping(_) => serde_norway::from_value(value)
                .map(RawBuild)
                .map_err(|e| e.to_string()),
            other => Err(format!(
                "expected a path or a mapping, found {}",
                kind(&other)
            )),
        }
    }
}

/// `extends: service` or `extends: {service, file}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendsLong {
    /// The service to extend.
    pub service: String,
    /// The file it is in (default: the same file).
    pub file: Option<String>,
}

/// The long form of a `ports` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortLong {
    /// The container port.
    pub target: u16,
    /// The host port or range.
    pub published: Option<Text>,
    /// The host address.
    pub host_ip: Option<String>,
    /// `tcp` or `udp`.
    pub protocol: Option<String>,
    /// Only `ingress`/`host`; ignored.
    pub mode: Option<String>,
}

/// The long form of a `volumes` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeLong {
    /// `volume`, `bind` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Volume name or host path.
    pub source: Option<String>,
    /// Path in the container.
    pub target: String,
    /// Mount read-only.
    pub read_only: Option<bool>,
}

/// The long form of a `depends_on` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependsLong {
    /// `service_started` (default), `service_healthy`, `service_completed_successfully`.
    pub condition: Option<String>,
    /// Restart this service when the dependency is restarted (accepted, not acted on).
    pub restart: Option<bool>,
    /// Whether the dependency must exist (default true).
    pub required: Option<bool>,
}

/// A service's entry under `networks` in its long form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetworkLong {
    /// More names the service is reached by on this network.
    pub aliases: Option<Vec<String>>,
}

/// `healthcheck`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]`, `["NONE"]` or a shell line.
    pub test: Option<StringOrList>,
    /// Go durations.
    pub interval: Option<String>,
    /// Go duration.
    pub timeout: Option<String>,
    /// Go duration.
    pub start_period: Option<String>,
    /// Go duration.
    pub start_interval: Option<String>,
    /// Failures before unhealthy.
    pub retries: Option<u32>,
    /// Turn the image's check off.
    pub disable: Option<bool>,
}

/// `deploy` (only `replicas` and a few ignored keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeploy {
    /// The number of containers.
    pub replicas: Option<u32>,
    /// `replicated` only.
    pub mode: Option<String>,
}

/// A service as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawService {
    pub image: Option<String>,
    pub build: Option<RawBuild>,
    pub command: Option<StringOrList>,
    pub entrypoint: Option<StringOrList>,
    pub environment: Option<MapOrList>,
    pub env_file: Option<OneOrMany>,
    pub ports: Option<Vec<Value>>,
    pub expose: Option<Vec<Text>>,
    pub volumes: Option<Vec<Value>>,
    pub networks: Option<Value>,
    pub network_mode: Option<String>,
    pub depends_on: Option<Value>,
    pub healthcheck: Option<RawHealthcheck>,
    pub restart: Option<String>,
    pub working_dir: Option<String>,
    pub user: Option<Text>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub container_name: Option<String>,
    pub labels: Option<MapOrList>,
    pub scale: Option<u32>,
    pub deploy: Option<RawDeploy>,
    pub profiles: Option<Vec<String>>,
    pub extends: Option<Value>,
    pub tty: Option<bool>,
    pub stdin_open: Option<bool>,
    pub privileged: Option<bool>,
    pub init: Option<bool>,
    pub read_only: Option<bool>,
    pub stop_signal: Option<String>,
    pub stop_grace_period: Option<String>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub dns: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub pull_policy: Option<String>,
}

/// A top-level `networks` or `volumes` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    /// Made elsewhere: used as it is, never created or removed.
    pub external: Option<bool>,
    /// The engine's name for it (default `<project>_<key>`).
    pub name: Option<String>,
    /// The driver.
    pub driver: Option<String>,
    /// Driver options.
    pub driver_opts: Option<BTreeMap<String, Text>>,
    /// Labels.
    pub labels: Option<MapOrList>,
}

/// The top-level keys a file may have (besides `x-` extensions).
pub const TOP_LEVEL_KEYS: [&str; 7] = [
    "version", "name", "services", "networks", "volumes", "secrets", "configs",
];
