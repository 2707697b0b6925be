//! The PORTS column of `ps`: docker's `DisplayablePorts`, which groups
//! consecutive ports into ranges.

use std::collections::HashMap;

/// One entry of a container summary's `Ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEntry {
    /// Host IP, empty when the port is only exposed.
    pub ip: String,
    /// Container port.
    pub private_port: u16,
    /// Host port (0 when not published).
    pub public_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub typ: String,
}

impl From<&bollard::models::PortSummary> for PortEntry {
    fn from(p: &bollard::models::PortSummary) -> Self {
        Self {
            ip: p.ip.clone().unwrap_or_default(),
            private_port: p.private_port,
            public_port: p.public_port.unwrap_or(0),
            typ: p
                .typ
                .as_ref()
                .map(|t| t.to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "tcp".into()),
        }
    }
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn form_group(key: &str, first: u16, last: u16) -> String {
    let (ip, typ) = match key.rsplit_once('/') {
        Some((ip, typ)) => (ip, typ),
        None => ("", key),
    };
    let mut group = first.to_string();
    if first != last {
        group = format!("{group}-{last}");
    }
    if ip.is_empty() {
        format!("{group}/{typ}")
    } else {
        format!("{}->{group}/{typ}", join_host_port(ip, &group))
    }
}

/// Renders ports like `0.0.0.0:8080->80/tcp, 443/tcp`.
pub fn displayable_ports(ports: &[PortEntry]) -> String {
    let mut ports = ports.to_vec();
    ports.sort_by(|a, b| {
        (a.private_port, &a.ip, a.public_port, &a.typ).cmp(&(
            b.private_port,
            &b.ip,
            b.public_port,
            &b.typ,
        ))
    });
    let mut groups: HashMap<String, (u16, u16)> = HashMap::new();
    let mut keys: Vec<String> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    for port in &ports {
        let current = port.private_port;
        let mut key = port.typ.clone();
        if !port.ip.is_empty() {
            if port.public_port != current {
                host_mappings.push(format!(
                    "{}->{}/{}",
                    join_host_port(&port.ip, &port.public_port.to_string()),
                    port.private_port,
                    port.typ
                ));
                continue;
            }
            key = format!("{}/{}", port.ip, port.typ);
        }
        match groups.get_mut(&key) {
            None => {
                groups.insert(key.clone(), (current, current));
                keys.push(key);
            }
            Some(group) if current == group.1.wrapping_add(1) => group.1 = current,
            Some(group) => {
                result.push(form_group(&key, group.0, group.1));
                *group = (current, current);
            }
        }
    }
    for key in &keys {
        if let Some((first, last)) = groups.get(key) {
            result.push(form_group(key, *first, *last));
        }
    }
    result.extend(host_mappings);
    result.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ip: &str, private_port: u16, public_port: u16, typ: &str) -> PortEntry {
        PortEntry {
            ip: ip.into(),
            private_port,
            public_port,
            typ: typ.into(),
        }
    }

    #[test]
    fn published_and_exposed() {
        assert_eq!(
            displayable_ports(&[p("0.0.0.0", 80, 8080, "tcp")]),
            "0.0.0.0:8080->80/tcp"
        );
        assert_eq!(displayable_ports(&[p("", 80, 0, "tcp")]), "80/tcp");
        assert_eq!(
            displayable_ports(&[p("::", 80, 8080, "tcp"), p("0.0.0.0", 80, 8080, "tcp")]),
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
        assert_eq!(displayable_ports(&[]), "");
    }

    #[test]
    fn ranges_group() {
        assert_eq!(
            displayable_ports(&[
                p("", 81, 0, "tcp"),
                p("", 80, 0, "tcp"),
                p("", 53, 0, "udp")
            ]),
            "53/udp, 80-81/tcp"
        );
        assert_eq!(
            displayable_ports(&[p("0.0.0.0", 80, 80, "tcp"), p("0.0.0.0", 81, 81, "tcp")]),
            "0.0.0.0:80-81->80-81/tcp"
        );
        assert_eq!(
            displayable_ports(&[p("", 80, 0, "tcp"), p("", 82, 0, "tcp")]),
            "80/tcp, 82/tcp"
        );
    }
}
