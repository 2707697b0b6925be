//! `-p/--publish` specs, parsed like docker's `nat.ParsePortSpec`:
//! `[ip:][hostPort:]containerPort[/proto]`, where both ports may be ranges
//! (`8000-8001:80-81`) and an IPv6 address is written in brackets.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// One container port (`80/tcp`) and the host address it is published on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The key used by the API: `<port>/<proto>`.
    pub container_port: String,
    /// Host IP, empty for all addresses.
    pub host_ip: String,
    /// Host port or host port range, empty for "any free port".
    pub host_port: String,
}

/// Parses one `-p` value into its mappings (several for a range).
pub fn parse_port_spec(raw: &str) -> Result<Vec<PortMapping>, String> {
    let (ip, host_port, container_part) = split_parts(raw);
    let (proto, container_port) = split_proto_port(&container_part);
    let mut ip = ip;
    if let Some(stripped) = ip.strip_prefix('[') {
        ip = stripped
            .strip_suffix(']')
            .ok_or_else(|| format!("invalid IP address {ip}"))?
            .to_string();
    }
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container_port.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let (start, end) = parse_port_range(&container_port)
        .map_err(|_| format!("invalid containerPort: {container_port}"))?;
    let (host_start, host_end) = if host_port.is_empty() {
        (0, 0)
    } else {
        parse_port_range(&host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?
    };
    if !host_port.is_empty() && (end - start) != (host_end - host_start) && end != start {
        return Err(format!(
            "invalid ranges specified for container and host Ports: {container_port} and {host_port}"
        ));
    }
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let mut out = Vec::new();
    for i in 0..=(end - start) {
        let mut host = if host_port.is_empty() {
            String::new()
        } else {
            (host_start + i).to_string()
        };
        if start == end && host_start != host_end {
            host = format!("{host}-{host_end}");
        }
        out.push(PortMapping {
            container_port: format!("{}/{proto}", start + i),
            host_ip: ip.clone(),
            host_port: host,
        });
    }
    Ok(out)
}

/// Parses one `--expose` value (`80`, `80/udp`, `8000-8002/tcp`) into `ExposedPorts` keys.
pub fn parse_expose(raw: &str) -> Result<Vec<String>, String> {
    let (proto, port) = split_proto_port(raw);
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let (start, end) =
        parse_port_range(&port).map_err(|_| format!("invalid range format for --expose: {raw}"))?;
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `ExposedPorts` keys (in order) and the bindings of each.
pub type Published = (Vec<String>, BTreeMap<String, Vec<PortMapping>>);

/// Parses all `-p` values into `ExposedPorts` keys and `PortBindings`;
/// an error names the bad spec and the problem.
pub fn parse_publish(specs: &[String]) -> Result<Published, (String, String)> {
    let mut exposed = Vec::new();
    let mut bindings: BTreeMap<String, Vec<PortMapping>> = BTreeMap::new();
    for spec in specs {
        let mappings = parse_port_spec(spec).map_err(|e| (spec.clone(), e))?;
        for m in mappings {
            if !exposed.contains(&m.container_port) {
                exposed.push(m.container_port.clone());
            }
            bindings
                .entry(m.container_port.clone())
                .or_default()
                .push(m);
        }
    }
    Ok((exposed, bindings))
}

fn split_parts(raw: &str) -> (String, String, String) {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1].to_string();
    match n {
        1 => (String::new(), String::new(), container),
        2 => (String::new(), parts[0].to_string(), container),
        3 => (parts[0].to_string(), parts[1].to_string(), container),
        _ => (
            parts[..n - 2].join(":"),
            parts[n - 2].to_string(),
            container,
        ),
    }
}

fn split_proto_port(raw: &str) -> (String, String) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return (String::new(), String::new());
    }
    if parts.len() == 1 || parts[1].is_empty() {
        return ("tcp".into(), parts[0].into());
    }
    (parts[1].into(), parts[0].into())
}

/// Parses `N` or `N-M` into an inclusive range of 16-bit ports.
pub fn parse_port_range(ports: &str) -> Result<(u32, u32), String> {
    if ports.is_empty() {
        return Err("empty string specified for ports".into());
    }
    let parse = |s: &str| s.parse::<u16>().map(u32::from).map_err(|e| e.to_string());
    match ports.split_once('-') {
        None => {
            let p = parse(ports)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let (start, end) = (parse(a)?, parse(b)?);
            if end < start {
                return Err(format!("invalid range specified for port: {ports}"));
            }
            Ok((start, end))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(c: &str, ip: &str, h: &str) -> PortMapping {
        PortMapping {
            container_port: c.into(),
            host_ip: ip.into(),
            host_port: h.into(),
        }
    }

    #[test]
    fn simple_specs() {
        assert_eq!(
            parse_port_spec("8080:80"),
            Ok(vec![m("80/tcp", "", "8080")])
        );
        assert_eq!(parse_port_spec("80"), Ok(vec![m("80/tcp", "", "")]));
        assert_eq!(
            parse_port_spec("127.0.0.1:8080:80/udp"),
            Ok(vec![m("80/udp", "127.0.0.1", "8080")])
        );
        assert_eq!(
            parse_port_spec("127.0.0.1::80"),
            Ok(vec![m("80/tcp", "127.0.0.1", "")])
        );
        assert_eq!(
            parse_port_spec("[::1]:8080:80/SCTP"),
            Ok(vec![m("80/sctp", "::1", "8080")])
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_port_spec("8000-8001:80-81"),
            Ok(vec![m("80/tcp", "", "8000"), m("81/tcp", "", "8001")])
        );
        assert_eq!(
            parse_port_spec("8000-8010:80"),
            Ok(vec![m("80/tcp", "", "8000-8010")])
        );
        assert_eq!(
            parse_port_spec("80-81"),
            Ok(vec![m("80/tcp", "", ""), m("81/tcp", "", "")])
        );
    }

    #[test]
    fn bad_specs() {
        assert_eq!(
            parse_port_spec("abc:80"),
            Err("invalid hostPort: abc".to_string())
        );
        assert_eq!(
            parse_port_spec("8080:abc"),
            Err("invalid containerPort: abc".to_string())
        );
        assert_eq!(
            parse_port_spec("8080:70000"),
            Err("invalid containerPort: 70000".to_string())
        );
        assert_eq!(
            parse_port_spec("1.2.3:8080:80"),
            Err("invalid IP address: 1.2.3".to_string())
        );
        assert_eq!(
            parse_port_spec("8080:80/xyz"),
            Err("invalid proto: xyz".to_string())
        );
        assert_eq!(
            parse_port_spec("8000-8002:80-81"),
            Err(
                "invalid ranges specified for container and host Ports: 80-81 and 8000-8002"
                    .to_string()
            )
        );
        assert_eq!(
            parse_port_spec("8080:"),
            Err("no port specified: 8080:<empty>".to_string())
        );
        assert!(parse_port_spec("90-80").is_err());
    }

    #[test]
    fn expose_takes_ports_ranges_and_protocols() {
        assert_eq!(parse_expose("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_expose("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            parse_expose("8000-8002").unwrap(),
            vec!["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(parse_expose("http").unwrap_err().contains("--expose"));
        assert!(parse_expose("80/icmp")
            .unwrap_err()
            .contains("invalid proto"));
    }

    #[test]
    fn publish_collects_exposed_ports_and_bindings() {
        let (exposed, bindings) = parse_publish(&[
            "8080:80".into(),
            "127.0.0.1:8081:80".into(),
            "53/udp".into(),
        ])
        .unwrap();
        assert_eq!(exposed, vec!["80/tcp".to_string(), "53/udp".to_string()]);
        assert_eq!(bindings["80/tcp"].len(), 2);
        assert_eq!(bindings["53/udp"], vec![m("53/udp", "", "")]);
        assert_eq!(
            parse_publish(&["x".into()]).unwrap_err(),
            ("x".to_string(), "invalid containerPort: x".to_string())
        );
    }
}
