//! Extra `/etc/hosts` entries of a container: docker's `--add-host NAME:ADDRESS`
//! (`HostConfig.ExtraHosts`), where the address `host-gateway` means "the host, as this
//! container reaches it", and the `host.docker.internal` name the daemon gives every
//! container that way (as Docker Desktop does).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The name every container can reach the host by.
pub const HOST_INTERNAL_NAME: &str = "host.docker.internal";

/// Where an extra name points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraHostAddress {
    /// A fixed address.
    Ip(IpAddr),
    /// docker's `host-gateway`: the host, as the container reaches it (its network's
    /// gateway on a bridge, loopback on the host network, the VM's gateway in a VM).
    HostGateway,
}

/// One extra name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    /// The name.
    pub name: String,
    /// Its address.
    pub address: ExtraHostAddress,
}

/// Why an `--add-host` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid extra host {value:?}: {why}")]
pub struct ExtraHostError {
    value: String,
    why: &'static str,
}

impl ExtraHost {
    /// Reads docker's forms `NAME:ADDRESS` and `NAME=ADDRESS` (an IPv6 address may be in
    /// brackets; `host-gateway` as the address).
    pub fn parse(value: &str) -> Result<Self, ExtraHostError> {
        let refuse = |why| ExtraHostError {
            value: value.to_string(),
            why,
        };
        let (name, address) = value
            .split_once('=')
            .or_else(|| value.split_once(':'))
            .ok_or_else(|| refuse("expected NAME:ADDRESS"))?;
        let name = name.trim();
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(refuse("the name is empty or has blanks"));
        }
        let address = address.trim();
        let address = if address == "host-gateway" {
            ExtraHostAddress::HostGateway
        } else {
            let bare = address
                .strip_prefix('[')
                .and_then(|a| a.strip_suffix(']'))
                .unwrap_or(address);
            ExtraHostAddress::Ip(
                bare.parse::<IpAddr>()
                    .map_err(|_| refuse("the address is not an IP address or host-gateway"))?,
            )
        };
        Ok(ExtraHost {
            name: name.to_string(),
            address,
        })
    }

    /// The daemon's `host.docker.internal` entry.
    pub fn host_internal() -> Self {
        ExtraHost {
            name: HOST_INTERNAL_NAME.to_string(),
            address: ExtraHostAddress::HostGateway,
        }
    }
}

impl fmt::Display for ExtraHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            ExtraHostAddress::Ip(ip) => write!(f, "{}:{ip}", self.name),
            ExtraHostAddress::HostGateway => write!(f, "{}:host-gateway", self.name),
        }
    }
}

/// `hosts` lines for `extra`, with `host-gateway` as `gateway` (entries for it are left
/// out when there is none: a container with no network cannot reach the host).
pub fn render(extra: &[ExtraHost], gateway: Option<IpAddr>) -> String {
    let mut text = String::new();
    for e in extra {
        let ip = match e.address {
            ExtraHostAddress::Ip(ip) => Some(ip),
            ExtraHostAddress::HostGateway => gateway,
        };
        if let Some(ip) = ip {
            text.push_str(&format!("{ip}\t{}\n", e.name));
        }
    }
    text
}

/// The address the host has for containers on its own network namespace.
pub fn host_network_gateway() -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_forms_parse() {
        let e = ExtraHost::parse("db:10.0.0.5").unwrap();
        assert_eq!(e.address, ExtraHostAddress::Ip("10.0.0.5".parse().unwrap()));
        let e = ExtraHost::parse("v6:::1").unwrap();
        assert_eq!(e.address, ExtraHostAddress::Ip("::1".parse().unwrap()));
        let e = ExtraHost::parse("v6=[fe80::1]").unwrap();
        assert_eq!(e.address, ExtraHostAddress::Ip("fe80::1".parse().unwrap()));
        let e = ExtraHost::parse("gw:host-gateway").unwrap();
        assert_eq!(e.address, ExtraHostAddress::HostGateway);
        assert_eq!(e.to_string(), "gw:host-gateway");
        for bad in ["nocolon", ":1.2.3.4", "a b:1.2.3.4", "x:notanip"] {
            let err = ExtraHost::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn host_gateway_takes_the_containers_gateway() {
        let extra = [
            ExtraHost::host_internal(),
            ExtraHost::parse("db:10.0.0.5").unwrap(),
        ];
        let gw = Some("172.18.0.1".parse().unwrap());
        assert_eq!(
            render(&extra, gw),
            "172.18.0.1\thost.docker.internal\n10.0.0.5\tdb\n"
        );
        assert_eq!(render(&extra, None), "10.0.0.5\tdb\n");
    }
}
