//! Containers' `/etc/hosts` files.
//!
//! These files are bind-mounted into running containers, so they are always
//! rewritten in place (truncate + write), never replaced by a rename.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::error::NetworkError;
use crate::state::{EndpointRecord, NetworkRecord, State};

pub const LOCALHOST_LINES: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
ff00::0\tip6-mcastprefix\n\
ff02::1\tip6-allnodes\n\
ff02::2\tip6-allrouters\n";

/// One line of a hosts file: an address and its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostEntry {
    pub ip: Ipv4Addr,
    pub names: Vec<String>,
}

impl HostEntry {
    /// Builds an entry from names, dropping empty ones, a leading `/`
    /// (Docker-style container names), names with whitespace, and duplicates.
    pub fn new<'a>(ip: Ipv4Addr, names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut kept: Vec<String> = Vec::new();
        for name in names {
            let name = name.trim_start_matches('/');
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                continue;
            }
            if !kept.iter().any(|k| k == name) {
                kept.push(name.to_string());
            }
        }
        HostEntry { ip, names: kept }
    }
}

/// The text of a hosts file: localhost lines, the container's own entry,
/// then its peers.
pub(crate) fn render(own: Option<&HostEntry>, peers: &[HostEntry]) -> String {
    let mut text = String::from(LOCALHOST_LINES);
    for entry in own.into_iter().chain(peers) {
        if entry.names.is_empty() {
            continue;
        }
        text.push_str(&format!("{}\t{}\n", entry.ip, entry.names.join(" ")));
    }
    text
}

/// Writes `content` into `path` in place, creating it if needed: written
/// from offset 0, then cut to its new length. (Truncating to zero first
/// would make ext4 flush the file on close, which costs milliseconds.)
pub(crate) fn write_in_place(path: &Path, content: &str) -> Result<(), NetworkError> {
    let context = || format!("write hosts file {}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| NetworkError::io(context(), e))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| NetworkError::io(context(), e))?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.set_len(content.len() as u64))
        .map_err(|e| NetworkError::io(context(), e))
}

/// The hosts file of a container on the host network: a copy of the host's own, then
/// `extra` (the host being loopback).
pub fn for_host_network(extra: &[crate::ExtraHost]) -> String {
    let mut text =
        std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| LOCALHOST_LINES.to_string());
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&crate::extra_hosts::render(
        extra,
        Some(crate::extra_hosts::host_network_gateway()),
    ));
    text
}

/// The hosts file of a container with no address ("none" network).
pub(crate) fn localhost_only() -> String {
    LOCALHOST_LINES.to_string()
}

/// The hosts file of `endpoint`: its own line, and on user-defined networks
/// one line per peer with its name, aliases and hostname.
pub(crate) fn for_endpoint(
    state: &State,
    network: &NetworkRecord,
    endpoint: &EndpointRecord,
) -> String {
    let entry = |e: &EndpointRecord| {
        e.ip.map(|ip| {
            let names = std::iter::once(e.hostname.as_str())
                .chain(std::iter::once(e.container_name.as_str()))
                .chain(e.aliases.iter().map(String::as_str));
            HostEntry::new(ip, names)
        })
    };
    let own = entry(endpoint);
    let peers: Vec<HostEntry> = if network.predefined {
        Vec::new()
    } else {
        state
            .endpoints_of(&network.id)
            .filter(|peer| peer.container_id != endpoint.container_id)
            .filter(|peer| peer.domain == endpoint.domain)
            .filter_map(entry)
            .collect()
    };
    let mut text = render(own.as_ref(), &peers);
    text.push_str(&extra_lines(endpoint));
    text
}

/// `endpoint`'s extra names, `host-gateway` being its gateway (the host's address on its
/// bridge).
fn extra_lines(endpoint: &EndpointRecord) -> String {
    let gateway = endpoint.gateway.map(std::net::IpAddr::V4);
    crate::extra_hosts::render(&endpoint.extra_hosts, gateway)
}

/// The hosts file of a container with all its endpoints: an own line per address, and
/// one line per peer on every user-defined network it shares with them.
pub(crate) fn for_container(state: &State, container_id: &str) -> String {
    let mut own = Vec::new();
    let mut peers = Vec::new();
    for (_, endpoint) in state.endpoints_of_container(container_id) {
        own.extend(entry(endpoint));
        let Some(network) = state.networks.get(&endpoint.network_id) else {
            continue;
        };
        if network.predefined {
            continue;
        }
        peers.extend(
            state
                .endpoints_of(&network.id)
                .filter(|peer| peer.container_id != container_id)
                .filter(|peer| peer.domain == endpoint.domain)
                .filter_map(entry),
        );
    }
    let mut text = render(None, &own);
    for line in render(None, &peers)
        .lines()
        .skip(LOCALHOST_LINES.lines().count())
    {
        text.push_str(line);
        text.push('\n');
    }
    // The first endpoint's (the namespace's owner) names and gateway.
    if let Some((_, first)) = state.endpoints_of_container(container_id).next() {
        text.push_str(&extra_lines(first));
    }
    text
}

/// Rewrites one container's hosts file from the state; failures are logged. Returns the
/// text and the container's domain when it is in a VM (whose copy is elsewhere).
pub(crate) fn refresh_container(state: &State, container_id: &str) -> Option<(String, String)> {
    let (_, first) = state.endpoints_of_container(container_id).next()?;
    let on_host = state.endpoints_of_container(container_id).any(|(_, e)| {
        state
            .networks
            .get(&e.network_id)
            .is_some_and(|n| n.driver == crate::types::Driver::Host)
    });
    if on_host {
        // A copy of the host's file: not ours to list.
        return None;
    }
    let text = for_container(state, container_id);
    if let Err(e) = write_in_place(&first.hosts_file, &text) {
        tracing::warn!(container_id, error = %e, "updating hosts file");
    }
    first.domain.clone().map(|domain| (text, domain))
}

fn entry(e: &EndpointRecord) -> Option<HostEntry> {
    e.ip.map(|ip| {
        let names = std::iter::once(e.hostname.as_str())
            .chain(std::iter::once(e.container_name.as_str()))
            .chain(e.aliases.iter().map(String::as_str));
        HostEntry::new(ip, names)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_own_entry_then_peers() {
        let own = HostEntry::new(Ipv4Addr::new(10, 0, 0, 2), ["abc123", "/web", "web"]);
        let peer = HostEntry::new(Ipv4Addr::new(10, 0, 0, 3), ["db", "database", ""]);
        let text = render(Some(&own), &[peer]);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.0.0.2\tabc123 web\n"));
        assert!(text.ends_with("10.0.0.3\tdb database\n"));
    }

    #[test]
    fn write_in_place_keeps_the_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        write_in_place(&path, "a much longer first version\n").unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        write_in_place(&path, "short\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "short\n");
    }
}
