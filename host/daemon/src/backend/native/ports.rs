//! Publishing a container's ports on the host (a userland proxy per port).

use std::net::{IpAddr, Ipv4Addr};

use vmrun_network::{Endpoint, PortForwarder, PortSpec, Protocol as NetProtocol};

use crate::backend::{BackendError, ContainerSpec, Protocol, PublishedPort};

fn net_protocol(p: Protocol) -> NetProtocol {
    match p {
        Protocol::Tcp => NetProtocol::Tcp,
        Protocol::Udp => NetProtocol::Udp,
    }
}

/// Listen on every port binding of `spec`, forwarding to the container's address.
pub async fn publish(
    spec: &ContainerSpec,
    endpoint: Option<&Endpoint>,
) -> Result<(Vec<vmrun_network::PublishedPort>, Vec<PublishedPort>), BackendError> {
    let mut published = Vec::new();
    let mut states = Vec::new();
    let ip = match endpoint.and_then(|e| e.ip) {
        Some(ip) => ip,
        // Host network: the container's ports are the host's. No network: nothing to reach.
        None => return Ok((published, states)),
    };
    for b in &spec.ports {
        let host_ip: IpAddr = match b.host_ip.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => s
                .parse()
                .map_err(|_| BackendError::BadRequest(format!("invalid host IP address: {s}")))?,
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let host_port = match b.host_port.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => s
                .parse::<u16>()
                .map_err(|_| BackendError::BadRequest(format!("invalid host port: {s}")))?,
            None => 0,
        };
        let port_spec = PortSpec {
            host_ip,
            host_port,
            container_port: b.container_port,
            proto: net_protocol(b.proto),
        };
        match PortForwarder::publish(port_spec, port_spec.target(ip)).await {
            Ok(p) => {
                states.push(PublishedPort {
                    host_ip: host_ip.to_string(),
                    host_port: p.host_port(),
                    container_port: b.container_port,
                    proto: b.proto,
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
    Ok((published, states))
}
