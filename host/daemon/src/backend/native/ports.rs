//! Publishing a container's ports on the host (a userland proxy per port).

use std::net::{IpAddr, Ipv4Addr};

use vmrun_network::{Endpoint, PortForwarder, PortSpec, Protocol, PublishedPort};

use crate::backend::BackendError;
use crate::state::{ContainerRecord, PublishedPortState};

/// Parse docker's `"80/tcp"` port key.
pub fn parse_port_key(key: &str) -> Result<(u16, Protocol), BackendError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => {
            return Err(BackendError::BadRequest(format!(
                "invalid protocol \"{other}\" in port {key}: use tcp or udp"
            )))
        }
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| BackendError::BadRequest(format!("invalid port: {key}")))?;
    Ok((port, proto))
}

/// Listen on every port binding of `rec`, forwarding to the container's address.
pub async fn publish(
    rec: &ContainerRecord,
    endpoint: Option<&Endpoint>,
) -> Result<(Vec<PublishedPort>, Vec<PublishedPortState>), BackendError> {
    let mut published = Vec::new();
    let mut states = Vec::new();
    let Some(bindings) = rec.host_config.port_bindings.as_ref() else {
        return Ok((published, states));
    };
    let ip = match endpoint.and_then(|e| e.ip) {
        Some(ip) => ip,
        // Host network: the container's ports are the host's. No network: nothing to reach.
        None => return Ok((published, states)),
    };
    let mut keys: Vec<_> = bindings.keys().collect();
    keys.sort();
    for key in keys {
        let (container_port, proto) = parse_port_key(key)?;
        for b in bindings.get(key).into_iter().flatten().flatten() {
            let host_ip: IpAddr = match b.host_ip.as_deref().filter(|s| !s.is_empty()) {
                Some(s) => s.parse().map_err(|_| {
                    BackendError::BadRequest(format!("invalid host IP address: {s}"))
                })?,
                None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            };
            let host_port = match b.host_port.as_deref().filter(|s| !s.is_empty()) {
                Some(s) => s
                    .parse::<u16>()
                    .map_err(|_| BackendError::BadRequest(format!("invalid host port: {s}")))?,
                None => 0,
            };
            let spec = PortSpec {
                host_ip,
                host_port,
                container_port,
                proto,
            };
            match PortForwarder::publish(spec, spec.target(ip)).await {
                Ok(p) => {
                    states.push(PublishedPortState {
                        host_ip: host_ip.to_string(),
                        host_port: p.host_port(),
                        container_port,
                        proto: if proto == Protocol::Udp { "udp" } else { "tcp" }.into(),
                    });
                    published.push(p);
                }
                Err(e) => {
                    for p in published {
                        p.close().await;
                    }
                    return Err(BackendError::Failed(format!(
                        "driver failed programming external connectivity: Bind for {host_ip}:{host_port} failed: {e}"
                    )));
                }
            }
        }
    }
    Ok((published, states))
}
