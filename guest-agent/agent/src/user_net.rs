//! Containers on user networks in the guest ([`Op::ConnectNetwork`]): one Linux bridge per
//! network in the guest's own namespace, and a veth pair per container and network whose
//! other side (`eth1`, ...) is in the container's namespace with the address the daemon
//! chose. The bridges get no address, so the guest routes nothing between them (networks
//! stay apart, as on the host) and nothing from them to `eth0`, which keeps the default
//! route to the host's network stack. Names resolve through each container's hosts file,
//! which the daemon rewrites here ([`write_hosts`]) as peers come and go.
//!
//! The netlink plumbing is `vmrun-netlink`'s, the same code the host's bridges use.
//!
//! [`Op::ConnectNetwork`]: vmrun_agent_protocol::Op::ConnectNetwork

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use vmrun_agent_protocol::network::NetworkLink;
use vmrun_agent_protocol::{AgentError, ErrorKind};
use vmrun_netlink::{is_exists, Netlink, VethPair};

fn failed(what: &str, e: std::io::Error) -> AgentError {
    let kind = if is_exists(&e) {
        ErrorKind::AlreadyExists
    } else {
        ErrorKind::Internal
    };
    AgentError::new(kind, format!("{what}: {e}"))
}

/// Joins the container whose init is `pid` to `link.bridge` (made if missing) through a
/// veth pair; its side gets `link`'s name, MAC and address and is set up.
pub async fn connect(pid: i32, link: NetworkLink) -> Result<(), AgentError> {
    if !link.valid_names() {
        return Err(AgentError::new(
            ErrorKind::BadRequest,
            format!("bad interface names in {link:?}"),
        ));
    }
    let outside = link.clone();
    tokio::task::spawn_blocking(move || pair_into(pid, &outside))
        .await
        .map_err(|e| AgentError::new(ErrorKind::Internal, format!("veth setup: {e}")))??;
    let inside = link.clone();
    let configured = crate::netns::in_netns(pid, move || {
        let mut netlink = Netlink::open()?;
        let index = netlink
            .link_index(&inside.interface)?
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENODEV))?;
        netlink.add_address(index, inside.address, inside.prefix_len)?;
        netlink.set_up(index)
    })
    .await;
    if let Err(e) = configured {
        let _ = disconnect(link.host_veth.clone()).await;
        return Err(failed(
            &format!("setting up {} in the container", link.interface),
            e,
        ));
    }
    Ok(())
}

/// Makes the bridge if needed and the veth pair, its peer in `pid`'s namespace.
fn pair_into(pid: i32, link: &NetworkLink) -> Result<(), AgentError> {
    let mut netlink = Netlink::open().map_err(|e| failed("opening netlink", e))?;
    let bridge = match netlink
        .link_index(&link.bridge)
        .map_err(|e| failed("looking up the bridge", e))?
    {
        Some(index) => index,
        None => {
            match netlink.create_bridge(&link.bridge) {
                Ok(()) => tracing::info!(bridge = link.bridge, "created bridge"),
                Err(e) if is_exists(&e) => {}
                Err(e) => return Err(failed(&format!("creating bridge {}", link.bridge), e)),
            }
            netlink
                .link_index(&link.bridge)
                .map_err(|e| failed("looking up the bridge", e))?
                .ok_or_else(|| {
                    AgentError::new(
                        ErrorKind::Internal,
                        format!("bridge {} vanished", link.bridge),
                    )
                })?
        }
    };
    netlink
        .set_up(bridge)
        .map_err(|e| failed(&format!("setting {} up", link.bridge), e))?;
    let namespace = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| failed("opening the container's network namespace", e))?;
    netlink
        .create_veth_into_netns(&VethPair {
            host_name: &link.host_veth,
            bridge_index: bridge,
            peer_name: &link.interface,
            peer_mac: link.mac,
            peer_netns_fd: namespace.as_raw_fd(),
        })
        .map_err(|e| failed(&format!("creating veth {}", link.host_veth), e))
}

/// Deletes the veth pair whose bridge side is `host_veth`; nothing to do when it is gone.
pub async fn disconnect(host_veth: String) -> Result<(), AgentError> {
    tokio::task::spawn_blocking(move || {
        Netlink::open()
            .and_then(|mut netlink| netlink.delete_link_by_name(&host_veth))
            .map(|_| ())
            .map_err(|e| failed(&format!("deleting veth {host_veth}"), e))
    })
    .await
    .map_err(|e| AgentError::new(ErrorKind::Internal, format!("veth removal: {e}")))?
}

/// Rewrites the hosts file at `path` in place (it is bound into the container: a new
/// file would not be seen there): written from offset 0, then cut to length.
pub fn write_hosts(path: &Path, text: &str) -> Result<(), AgentError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::NotFound
            } else {
                ErrorKind::Internal
            };
            AgentError::new(kind, format!("opening {}: {e}", path.display()))
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.set_len(text.len() as u64))
        .map_err(|e| failed(&format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_rewritten_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(
            &path,
            "127.0.0.1\tlocalhost\n10.0.0.9\ta-much-longer-name\n",
        )
        .unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        write_hosts(&path, "127.0.0.1\tlocalhost\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "127.0.0.1\tlocalhost\n"
        );
    }

    #[test]
    fn a_missing_hosts_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_hosts(&dir.path().join("hosts"), "x").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
    }
}
