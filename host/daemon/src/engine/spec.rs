//! From the saved record to what a backend is told ([`ContainerSpec`]), and from what a
//! backend reports back to the saved record.

use std::collections::HashMap;
use std::path::PathBuf;

use super::EngineError;
use crate::backend::{
    console_size, ContainerSpec, MountSpec, NetworkEndpoint, NetworkSpec, PortBinding, ProcessSpec,
    Protocol, PublishedPort, Resources, Security,
};
use crate::state::{ContainerRecord, DockerHostConfig, EndpointState, PublishedPortState};

/// Parse docker's `"80/tcp"` port key.
pub fn parse_port_key(key: &str) -> Result<(u16, Protocol), EngineError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => {
            return Err(EngineError::bad_request(format!(
                "invalid protocol \"{other}\" in port {key}: use tcp or udp"
            )))
        }
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| EngineError::bad_request(format!("invalid port: {key}")))?;
    Ok((port, proto))
}

/// The container's hostname: `--hostname`, else the short id.
pub fn hostname(rec: &ContainerRecord) -> String {
    rec.config
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| rec.short_id().to_string())
}

/// The container's published ports: its `PortBindings`, and with `PublishAllPorts` (`-P`)
/// every exposed port without a binding, on any free host port (as docker).
fn port_bindings(rec: &ContainerRecord) -> Result<Vec<PortBinding>, EngineError> {
    let hc = &rec.host_config;
    let empty = HashMap::new();
    let bindings = hc.port_bindings.as_ref().unwrap_or(&empty);
    let mut keys: Vec<_> = bindings.keys().collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let (container_port, proto) = parse_port_key(key)?;
        for b in bindings.get(key).into_iter().flatten().flatten() {
            out.push(PortBinding {
                container_port,
                proto,
                host_ip: b.host_ip.clone(),
                host_port: b.host_port.clone(),
            });
        }
    }
    if publish_all(hc) {
        let mut exposed = rec.config.exposed_ports();
        exposed.sort();
        for key in exposed {
            let (container_port, proto) = parse_port_key(&key)?;
            let bound = out
                .iter()
                .any(|b| b.container_port == container_port && b.proto == proto);
            if !bound {
                out.push(PortBinding {
                    container_port,
                    proto,
                    host_ip: None,
                    host_port: None,
                });
            }
        }
    }
    Ok(out)
}

/// `HostConfig.PublishAllPorts` (`docker run -P`).
pub fn publish_all(hc: &DockerHostConfig) -> bool {
    hc.rest
        .get("PublishAllPorts")
        .and_then(serde_json::Value::as_bool)
        == Some(true)
}

/// `--add-host` values (`HostConfig.ExtraHosts`), then `host.docker.internal` pointing
/// at the host unless one of them names it (every container can reach the host by that
/// name, as with Docker Desktop).
pub fn extra_hosts(values: &[String]) -> Result<Vec<vmrun_network::ExtraHost>, EngineError> {
    let mut extra = values
        .iter()
        .map(|v| vmrun_network::ExtraHost::parse(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EngineError::bad_request(e.to_string()))?;
    let host_internal = vmrun_network::ExtraHost::host_internal();
    if !extra.iter().any(|e| e.name == host_internal.name) {
        extra.push(host_internal);
    }
    Ok(extra)
}

/// The saved `HostConfig.ExtraHosts`.
fn saved_extra_hosts(hc: &DockerHostConfig) -> Vec<String> {
    hc.rest
        .get("ExtraHosts")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What the container's backend is told about it.
pub fn container_spec(rec: &ContainerRecord) -> Result<ContainerSpec, EngineError> {
    let hc = &rec.host_config;
    let config = &rec.config;
    // Volumes are filled from the image once, before the container's first run.
    let never_started = rec.state.started_at.is_none();
    Ok(ContainerSpec {
        id: rec.id.clone(),
        name: rec.name.clone(),
        hostname: hostname(rec),
        layers: rec.layers.clone(),
        readonly_rootfs: hc.readonly_rootfs.unwrap_or(false),
        process: ProcessSpec {
            args: std::iter::once(rec.path.clone())
                .chain(rec.args.iter().cloned())
                .collect(),
            env: config.env.clone().unwrap_or_default(),
            cwd: config.working_dir.clone().filter(|w| !w.is_empty()),
            user: config.user.clone(),
            tty: rec.tty(),
            open_stdin: config.open_stdin.unwrap_or(false),
            stdin_once: config.stdin_once.unwrap_or(false),
            console_size: console_size(hc.console_size.as_deref()),
        },
        network: NetworkSpec {
            // Disconnected from every network: a loopback only.
            mode: if rec.network_mode.is_empty() {
                vmrun_network::NONE_NETWORK.to_string()
            } else {
                rec.network_mode.clone()
            },
            aliases: rec.aliases.clone(),
        },
        extra_hosts: extra_hosts(&saved_extra_hosts(hc))?,
        ports: port_bindings(rec)?,
        publish_all: publish_all(hc),
        mounts: rec
            .mounts
            .iter()
            .map(|m| MountSpec {
                source: PathBuf::from(&m.source),
                destination: m.destination.clone(),
                read_only: !m.rw,
                fill_from_image: m.fill && m.kind == "volume" && never_started,
            })
            .collect(),
        resources: Resources {
            memory: hc.memory,
            memory_swap: hc.memory_swap,
            nano_cpus: hc.nano_cpus,
            cpu_shares: hc.cpu_shares,
            cpu_quota: hc.cpu_quota,
            cpu_period: hc.cpu_period,
            pids_limit: hc.pids_limit,
            cpuset_cpus: rest_string(&hc.rest, "CpusetCpus"),
            cpuset_mems: rest_string(&hc.rest, "CpusetMems"),
            shm_size: hc.shm_size,
        },
        security: Security {
            privileged: hc.privileged.unwrap_or(false),
            cap_add: hc.cap_add.clone().unwrap_or_default(),
            cap_drop: hc.cap_drop.clone().unwrap_or_default(),
        },
        pid: rec.state.pid,
        log_rotation: log_rotation(&hc.rest)?,
    })
}

/// A backend's endpoint as saved.
pub fn endpoint_state(e: &NetworkEndpoint) -> EndpointState {
    EndpointState {
        network: e.network.clone(),
        network_id: e.network_id.clone(),
        endpoint_id: e.endpoint_id.clone(),
        ip: e.ip.clone(),
        prefix_len: e.prefix_len,
        gateway: e.gateway.clone(),
        mac: e.mac.clone(),
    }
}

/// A backend's published port as saved.
pub fn port_state(p: &PublishedPort) -> PublishedPortState {
    PublishedPortState {
        host_ip: p.host_ip.clone(),
        host_port: p.host_port,
        container_port: p.container_port,
        proto: p.proto.as_str().into(),
    }
}

/// A non-empty string field of a config's untyped rest.
fn rest_string(rest: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<String> {
    rest.get(key)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The rotation of the record's `LogConfig` (docker's JSON: `Type`, `Config`).
fn log_rotation(
    rest: &serde_json::Map<String, serde_json::Value>,
) -> Result<Option<crate::backend::LogRotation>, EngineError> {
    let Some(lc) = rest.get("LogConfig") else {
        return Ok(None);
    };
    let config = lc["Config"].as_object();
    super::log_opts::rotation(
        lc["Type"].as_str(),
        config
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())),
    )
}
