//! Networking of containers in VMs beyond their published ports: each container's `eth0`
//! in the guest is a TAP device whose Ethernet frames cross vsock (two agent streams,
//! one per direction, see `StreamTarget::Network`) to a `passt` process of its own on the
//! host (Debian's `passt`, a user-mode network stack: it turns the frames into ordinary
//! sockets of an unprivileged process). So containers reach the host's network (TCP,
//! UDP, ICMP) with no bridge, route or NAT rule on the host, their DNS queries go to the
//! host's resolver (`--dns-forward`), and the gateway's address reaches the host's own
//! loopback, which is where `host.docker.internal` points.
//!
//! Chosen over a virtio-net device because the same path serves both VM monitors (our
//! VMM has no network device, QEMU would need one more per VM) and every container gets
//! a stack of its own, so containers in the shared VM need no NAT inside the guest.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use tokio::task::JoinHandle;
use vmrun_agent_protocol::network::{EtcFiles, GuestNetwork};
use vmrun_agent_protocol::StreamTarget;

use super::machine::Machine;
use super::ports::{next_token, open_target};
use crate::backend::{BackendError, ContainerSpec};

/// A container's network while it runs: its `passt` and the relay to the agent. Dropping
/// it ends both (the container's `eth0` goes with the closed streams).
pub struct ContainerNetwork {
    relay: JoinHandle<()>,
}

impl Drop for ContainerNetwork {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

/// Whether container `c` gets a network beyond loopback.
pub fn wants_network(c: &ContainerSpec) -> bool {
    c.network.mode != "none"
}

/// `/etc/hosts` and `/etc/resolv.conf` of container `c` in a VM.
pub fn etc_files(c: &ContainerSpec) -> EtcFiles {
    let net = GuestNetwork::user_mode();
    let mut hosts = String::from(vmrun_network::LOCALHOST_LINES);
    let gateway = if wants_network(c) {
        if !c.hostname.is_empty() {
            hosts.push_str(&format!("{}\t{}\n", net.address, c.hostname));
        }
        Some(IpAddr::V4(net.gateway))
    } else {
        None
    };
    hosts.push_str(&vmrun_network::extra_hosts::render(&c.extra_hosts, gateway));
    EtcFiles {
        hosts,
        hostname: if c.hostname.is_empty() {
            String::new()
        } else {
            format!("{}\n", c.hostname)
        },
        resolv_conf: format!("nameserver {}\n", net.dns),
    }
}

/// The `passt` binary.
fn passt_binary() -> Result<PathBuf, BackendError> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("passt"))
            .find(|p| p.is_file())
    });
    found.ok_or_else(|| {
        BackendError::Failed(
            "passt is not installed: containers in VMs reach the network through it \
             (apt-get install passt), or run them with --network none"
                .into(),
        )
    })
}

/// Where a container's `passt` runs.
#[derive(Debug, Clone, Default)]
pub struct PasstOptions {
    /// A host network namespace to run it in (a pod's, made by CNI: its traffic leaves
    /// through the pod's interface), instead of the caller's. The guest's `eth0` then
    /// has that namespace's address, prefix and gateway.
    pub netns: Option<PathBuf>,
}

/// Starts container `id`'s network in `machine`: its `passt`, then `eth0` in the guest
/// (set up before this returns, so before the container's process starts).
pub async fn connect(machine: &Arc<Machine>, id: &str) -> Result<ContainerNetwork, BackendError> {
    connect_with(machine, id, &PasstOptions::default()).await
}

/// [`connect`] with its `passt` as `options` say.
pub async fn connect_with(
    machine: &Arc<Machine>,
    id: &str,
    options: &PasstOptions,
) -> Result<ContainerNetwork, BackendError> {
    let failed = |what: &str, e: std::io::Error| {
        BackendError::Failed(format!("starting the container's network: {what}: {e}"))
    };
    let net = match &options.netns {
        Some(netns) => namespace_network(netns).await?,
        None => GuestNetwork::user_mode(),
    };
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| failed("a socket pair", e))?;
    let mut cmd = tokio::process::Command::new(passt_binary()?);
    cmd.args([
        "--foreground",
        "--quiet",
        "--one-off",
        "--ipv4-only",
        "--fd",
        "3",
    ])
    .args(["--address", &net.address.to_string()])
    .args(["--netmask", &net.prefix_len.to_string()])
    .args(["--gateway", &net.gateway.to_string()])
    .args(["--dns-forward", &net.dns.to_string()])
    // In a namespace of its own (a pod's), the gateway is a real one (CNI's bridge), not
    // the host's loopback.
    .args(options.netns.as_ref().map(|_| "--no-map-gw"))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let netns = match &options.netns {
        Some(path) => Some(std::fs::File::open(path).map_err(|e| {
            failed(
                &format!("opening the network namespace {}", path.display()),
                e,
            )
        })?),
        None => None,
    };
    let netns_fd = netns.as_ref().map(AsRawFd::as_raw_fd);
    let fd = theirs.as_raw_fd();
    // SAFETY: runs in the child between fork and exec and only calls `setns`, `dup2` and
    // `fcntl`, which are async-signal-safe; `fd` and `netns_fd` are open in the child
    // (inherited; the namespace's file is closed at exec).
    unsafe {
        cmd.pre_exec(move || {
            if let Some(ns) = netns_fd {
                if libc::setns(ns, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let r = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    if nix::unistd::geteuid().is_root() {
        // passt will not run as root and drops to `nobody`; named by number, so a host
        // without that user in its passwd file (a minimal test host) works too.
        cmd.args(["--runas", "65534:65534"]);
    }
    let mut passt = cmd.spawn().map_err(|e| failed("running passt", e))?;
    drop(theirs);
    drop(netns);
    let short = id.get(..12).unwrap_or(id).to_string();
    if let Some(stderr) = passt.stderr.take() {
        tokio::spawn(log_passt(stderr, short.clone()));
    }
    ours.set_nonblocking(true)
        .map_err(|e| failed("the socket pair", e))?;
    let passt_sock =
        tokio::net::UnixStream::from_std(ours).map_err(|e| failed("the socket pair", e))?;
    let token = next_token();
    let (to_guest, from_guest) = tokio::try_join!(
        open_target(
            machine,
            StreamTarget::Network {
                id: id.to_string(),
                network: net,
                return_token: token,
            }
        ),
        open_target(machine, StreamTarget::ForwardReturn { token }),
    )
    .map_err(|e| failed("eth0 in the guest", e))?;
    let relay = tokio::spawn(async move {
        // Both halves of each stream stay bound: a dropped write half would shut the
        // connection down for writing, which a vsock path may take for a full close.
        let (mut passt_rd, mut passt_wr) = passt_sock.into_split();
        let (mut guest_rd, _kept_open) = from_guest.into_split();
        let (_also_kept_open, mut guest_wr) = to_guest.into_split();
        tokio::select! {
            r = tokio::io::copy(&mut passt_rd, &mut guest_wr) => {
                tracing::debug!(container = %short, "network to the guest ended: {r:?}");
            }
            r = tokio::io::copy(&mut guest_rd, &mut passt_wr) => {
                tracing::debug!(container = %short, "network from the guest ended: {r:?}");
            }
            status = passt.wait() => {
                tracing::warn!(container = %short, "passt exited: {status:?}");
            }
        }
        let _ = passt.start_kill();
    });
    Ok(ContainerNetwork { relay })
}

/// The guest side of a network whose `passt` runs in the host namespace `netns` (a
/// pod's, as CNI made it): the namespace's own address, prefix and gateway, so the
/// container sees the pod IP on its `eth0` as the cluster knows it (as under Kata), and
/// binds to it work. DNS stays forwarded by `passt`.
async fn namespace_network(netns: &std::path::Path) -> Result<GuestNetwork, BackendError> {
    let path = netns.to_path_buf();
    let found = tokio::task::spawn_blocking(move || vmrun_network::netns::default_route(&path))
        .await
        .map_err(|e| BackendError::Failed(format!("reading the pod's network: {e}")))?
        .map_err(|e| BackendError::Failed(format!("reading the pod's network: {e}")))?;
    let Some((address, gateway)) = found else {
        return Err(BackendError::Failed(format!(
            "the network namespace {} has no default route through a gateway with an \
             address on its interface",
            netns.display()
        )));
    };
    Ok(GuestNetwork {
        address: address.addr(),
        prefix_len: address.prefix_len(),
        gateway,
        ..GuestNetwork::user_mode()
    })
}

/// Logs what `passt` says (its errors: with `--quiet` it says nothing else), less its
/// complaints about a missing syslog. A host with no default route is the usual one:
/// Debian 12's passt then refuses to start ("External interface not usable") and the
/// container has loopback only.
async fn log_passt(stderr: tokio::process::ChildStderr, container: String) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if !line.starts_with("Failed to send") && !line.trim().is_empty() {
            tracing::warn!(%container, "passt: {line}");
        }
    }
}
