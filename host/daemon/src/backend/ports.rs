//! Publishing a container's ports on the host: a userland proxy per port
//! (`vmrun_network::PortForwarder`), whatever the backend. Native containers are reached
//! at their address on the bridge; containers in microVMs through their guest agent.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use vmrun_network::{ForwardTarget, PortForwarder, PortSpec, Protocol as NetProtocol};

use crate::backend::{BackendError, ContainerSpec, PortBinding, Protocol, PublishedPort};

/// Listeners of a container's published ports; closed when dropped.
pub type Listeners = Vec<vmrun_network::PublishedPort>;

impl From<Protocol> for NetProtocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => NetProtocol::Tcp,
            Protocol::Udp => NetProtocol::Udp,
        }
    }
}

impl From<NetProtocol> for Protocol {
    fn from(p: NetProtocol) -> Self {
        match p {
            NetProtocol::Tcp => Protocol::Tcp,
            NetProtocol::Udp => Protocol::Udp,
        }
    }
}

/// Where binding `b` listens: its host address (every IPv4 address by default, as
/// docker) and port (0: any free one).
fn host_side(b: &PortBinding) -> Result<(IpAddr, u16), BackendError> {
    let host_ip = match b.host_ip.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => s
            .trim_start_matches('[')
            .trim_end_matches(']')
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
    Ok((host_ip, host_port))
}

/// Listens on every port binding of `spec`, relaying each to `target(binding)`; on a
/// failure closes what it opened and names the address that could not be bound.
pub async fn publish<F>(
    spec: &ContainerSpec,
    target: F,
) -> Result<(Listeners, Vec<PublishedPort>), BackendError>
where
    F: Fn(&PortBinding) -> Arc<dyn ForwardTarget>,
{
    let mut listeners = Vec::new();
    let mut states = Vec::new();
    for b in &spec.ports {
        let (host_ip, host_port) = match host_side(b) {
            Ok(h) => h,
            Err(e) => {
                close(listeners).await;
                return Err(e);
            }
        };
        let port_spec = PortSpec {
            host_ip,
            host_port,
            container_port: b.container_port,
            proto: b.proto.into(),
        };
        match PortForwarder::publish_to(port_spec, target(b)).await {
            Ok(p) => {
                states.push(PublishedPort {
                    host_ip: host_ip.to_string(),
                    host_port: p.host_port(),
                    container_port: b.container_port,
                    proto: b.proto,
                });
                listeners.push(p);
            }
            Err(e) => {
                close(listeners).await;
                let shown = match host_ip {
                    IpAddr::V6(v6) => format!("[{v6}]"),
                    IpAddr::V4(v4) => v4.to_string(),
                };
                return Err(BackendError::Failed(format!(
                    "driver failed programming external connectivity: Bind for {shown}:{host_port} failed: {e}"
                )));
            }
        }
    }
    Ok((listeners, states))
}

/// Stops listening and waits until the sockets are closed (so the ports are free).
pub async fn close(listeners: Listeners) {
    for p in listeners {
        p.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(ip: Option<&str>, port: Option<&str>) -> PortBinding {
        PortBinding {
            container_port: 80,
            proto: Protocol::Tcp,
            host_ip: ip.map(str::to_string),
            host_port: port.map(str::to_string),
        }
    }

    #[test]
    fn host_sides_default_to_every_ipv4_address_and_any_port() {
        let any = host_side(&binding(None, Some(""))).unwrap();
        assert_eq!(any, (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
        let v6 = host_side(&binding(Some("[::1]"), Some("8080"))).unwrap();
        assert_eq!(v6, ("::1".parse().unwrap(), 8080));
        let e = host_side(&binding(Some("300.1.1.1"), None)).unwrap_err();
        assert!(e.to_string().contains("invalid host IP address: 300.1.1.1"));
        let e = host_side(&binding(None, Some("http"))).unwrap_err();
        assert!(e.to_string().contains("invalid host port: http"));
    }
}
