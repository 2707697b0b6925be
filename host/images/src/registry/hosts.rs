//! How registries are reached: which ones speak plain HTTP, which mirrors stand in for
//! Docker Hub, and where per-registry TLS material lives (docker's `certs.d` layout).
//!
//! Which scheme a registry gets (as dockerd does, see moby's `lookupV2Endpoints`):
//!
//! * listed in [`RegistryHosts::insecure`] (by `host[:port]`, `host`, or a CIDR such as
//!   `10.0.0.0/8` holding its address): HTTPS without certificate verification first,
//!   plain HTTP when that fails;
//! * loopback (`localhost`, `127.0.0.0/8`, `::1`): HTTPS with verification first, plain
//!   HTTP when the server does not speak TLS. Unlike dockerd (which counts `127.0.0.0/8`
//!   as insecure) an untrusted certificate is an error here: list the registry as
//!   insecure to skip verification;
//! * anything else: HTTPS, verified against the system roots and the registry's
//!   `certs.d/<host[:port]>/*.crt`.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;

/// The certs directories dockerd-compatible daemons read by default.
pub const DEFAULT_CERTS_DIRS: &[&str] = &["/etc/vmrun/certs.d", "/etc/docker/certs.d"];

/// Daemon-wide registry settings, shared by pull, push and login.
#[derive(Clone, Debug, Default)]
pub struct RegistryHosts {
    /// Registries (`host:port`, `host` or a CIDR like `10.0.0.0/8`) that may be reached
    /// over plain HTTP or HTTPS without certificate verification, besides loopback ones.
    pub insecure: Vec<String>,
    /// Mirrors of Docker Hub (`https://mirror.example` or `host:port`), tried in order
    /// before `registry-1.docker.io` for `docker.io` references (pulls only).
    pub mirrors: Vec<String>,
    /// Directories laid out like docker's `/etc/docker/certs.d`: `<dir>/<host[:port]>/`
    /// holds `*.crt` CA roots and `*.cert` + `*.key` client certificate pairs.
    pub certs_dirs: Vec<PathBuf>,
}

/// One `insecure` entry, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsecureEntry {
    /// An IP network: `addr/prefix`.
    Cidr {
        /// The network address.
        addr: IpAddr,
        /// Prefix length in bits.
        prefix: u8,
    },
    /// A registry name, `host` or `host:port`.
    Name(String),
}

impl InsecureEntry {
    /// Parses `10.0.0.0/8`, `fd00::/8`, `myreg:5000` or `myreg`.
    pub fn parse(entry: &str) -> Result<InsecureEntry, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("an empty insecure registry entry".into());
        }
        if entry.contains("://") {
            return Err(format!(
                "insecure registry {entry:?} should not contain '://' (give host[:port] or a CIDR)"
            ));
        }
        if let Some((addr, prefix)) = entry.split_once('/') {
            let addr: IpAddr = addr.parse().map_err(|_| {
                format!("insecure registry {entry:?}: {addr:?} is not an IP address")
            })?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 =
                prefix.parse().ok().filter(|p| *p <= max).ok_or_else(|| {
                    format!("insecure registry {entry:?}: prefix must be 0 to {max}")
                })?;
            return Ok(InsecureEntry::Cidr { addr, prefix });
        }
        Ok(InsecureEntry::Name(entry.to_owned()))
    }

    /// Whether the network holds `ip`.
    fn contains(&self, ip: IpAddr) -> bool {
        let InsecureEntry::Cidr { addr, prefix } = self else {
            return false;
        };
        match (addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl RegistryHosts {
    /// No insecure registries or mirrors; certs from [`DEFAULT_CERTS_DIRS`].
    pub fn with_default_certs_dirs() -> RegistryHosts {
        RegistryHosts {
            certs_dirs: DEFAULT_CERTS_DIRS.iter().map(PathBuf::from).collect(),
            ..RegistryHosts::default()
        }
    }

    /// Checks every entry: insecure entries parse, mirrors are `http(s)://host[:port]`
    /// or `host[:port]`. The message names the bad entry.
    pub fn validate(&self) -> Result<(), String> {
        for entry in &self.insecure {
            InsecureEntry::parse(entry)?;
        }
        for mirror in &self.mirrors {
            super::mirrors::MirrorEndpoint::parse(mirror)?;
        }
        Ok(())
    }

    /// The CIDR entries of [`RegistryHosts::insecure`], as written (`10.0.0.0/8`).
    pub fn insecure_cidrs(&self) -> Vec<String> {
        self.insecure
            .iter()
            .filter(|e| matches!(InsecureEntry::parse(e), Ok(InsecureEntry::Cidr { .. })))
            .map(|e| e.trim().to_owned())
            .collect()
    }

    /// The name entries of [`RegistryHosts::insecure`] (`myreg:5000`).
    pub fn insecure_names(&self) -> Vec<String> {
        self.insecure
            .iter()
            .filter_map(|e| match InsecureEntry::parse(e) {
                Ok(InsecureEntry::Name(n)) => Some(n),
                _ => None,
            })
            .collect()
    }

    /// Whether `host` (`host[:port]`) is listed insecure: by its name (with or without
    /// the port) or by a CIDR holding its address (names are resolved, as dockerd does).
    pub fn is_insecure(&self, host: &str) -> bool {
        let entries: Vec<InsecureEntry> = self
            .insecure
            .iter()
            .filter_map(|e| InsecureEntry::parse(e).ok())
            .collect();
        let name = host_name(host);
        if entries
            .iter()
            .any(|e| matches!(e, InsecureEntry::Name(n) if n == host || n == name))
        {
            return true;
        }
        if !entries
            .iter()
            .any(|e| matches!(e, InsecureEntry::Cidr { .. }))
        {
            return false;
        }
        let addresses: Vec<IpAddr> = match name.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (name, 0u16)
                .to_socket_addrs()
                .map(|a| a.map(|s| s.ip()).collect())
                .unwrap_or_default(),
        };
        addresses
            .iter()
            .any(|ip| entries.iter().any(|e| e.contains(*ip)))
    }
}

/// `host:port` → `host`, `[::1]:5000` → `::1`.
pub(crate) fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        // More than one ':' and no brackets: a bare IPv6 address.
        Some((h, _)) if !h.contains(':') => h,
        _ => host,
    }
}

/// Whether `host` (with optional port) is `localhost` or a loopback address.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = host_name(host);
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(insecure: &[&str]) -> RegistryHosts {
        RegistryHosts {
            insecure: insecure.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn insecure_by_name_and_cidr() {
        let h = hosts(&[
            "myreg.example:5000",
            "10.0.0.0/8",
            "other.example",
            "fd00::/8",
        ]);
        assert!(h.is_insecure("myreg.example:5000"));
        assert!(!h.is_insecure("myreg.example:5001"));
        assert!(h.is_insecure("other.example:443"));
        assert!(h.is_insecure("10.1.2.3:5000"));
        assert!(h.is_insecure("10.255.0.1"));
        assert!(!h.is_insecure("11.0.0.1:5000"));
        assert!(h.is_insecure("[fd12::1]:5000"));
        assert!(!h.is_insecure("[fe80::1]:5000"));
        assert!(!hosts(&[]).is_insecure("10.0.0.1"));
        assert!(hosts(&["0.0.0.0/0"]).is_insecure("192.168.1.1:80"));
        assert_eq!(h.insecure_cidrs(), vec!["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(
            h.insecure_names(),
            vec!["myreg.example:5000", "other.example"]
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let err = hosts(&["10.0.0.0/33"]).validate().unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        let err = hosts(&["bad/8"]).validate().unwrap_err();
        assert!(err.contains("not an IP address"), "{err}");
        let err = hosts(&["http://x:5000"]).validate().unwrap_err();
        assert!(err.contains("://"), "{err}");
        assert!(hosts(&["x:5000", "127.0.0.0/8"]).validate().is_ok());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("[::1]:5000"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("registry-1.docker.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}
