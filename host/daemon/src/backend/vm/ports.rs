//! Published ports of containers in microVMs: the listener is on the host
//! (`vmrun_network::PortForwarder`, as for native containers) and every accepted TCP
//! connection, or every UDP client's flow, is its own stream to the guest agent
//! ([`StreamTarget::Forward`]), which connects inside the container's network namespace.
//! The bytes are framed as `vmrun_agent_protocol::forward` says, so half-closes and
//! resets cross the VM boundary whichever vsock path carries them, and a TCP
//! connection's two directions travel on two vsock connections (see
//! `StreamTarget::Forward`).
//!
//! Automatic forwarding (`vmrund --auto-forward`, or `-P` on the container): the agent
//! reports the TCP and UDP ports the container serves on as they change
//! ([`StreamTarget::Listeners`]) and the host listens on the same port of `127.0.0.1`
//! while the container does (a port the host already uses is left alone, with a warning).
//! The ports forwarded so go to the engine as they change (`docker port`, inspect).
//! [`forward_listeners`] does the same elsewhere ([`ListenPlace`]: the containerd shim
//! listens on a pod's IP in its CNI network namespace, as a pod's ports are reached).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;
use vmrun_agent_protocol::forward::{self, Ending};
use vmrun_agent_protocol::{ForwardProtocol, StreamTarget};
use vmrun_network::{
    DatagramReceiver, DatagramSender, ForwardTarget, PortForwarder, PortSpec,
    Protocol as NetProtocol, UdpFlow,
};

use super::machine::Machine;
use crate::backend::ports::{self, Listeners};
use crate::backend::{BackendError, ContainerSpec, Protocol, PublishedPort};

/// Port `port` of container `id`, in `machine`.
struct AgentForward {
    machine: Arc<Machine>,
    id: String,
    port: u16,
}

impl AgentForward {
    /// The two connections of one forward: out (host to container) and back. Each
    /// vsock connection carries data one way only.
    async fn open_pair(
        &self,
        protocol: ForwardProtocol,
    ) -> io::Result<(tokio::net::UnixStream, tokio::net::UnixStream)> {
        let token = next_token();
        // Both at once: the agent pairs them whichever comes first.
        tokio::try_join!(
            self.open_target(StreamTarget::Forward {
                id: self.id.clone(),
                port: self.port,
                protocol,
                return_token: Some(token),
            }),
            self.open_target(StreamTarget::ForwardReturn { token }),
        )
    }

    async fn open_target(&self, target: StreamTarget) -> io::Result<tokio::net::UnixStream> {
        open_target(&self.machine, target).await
    }
}

/// A stream connection to `machine`'s agent, within its call timeout.
pub(super) async fn open_target(
    machine: &Machine,
    target: StreamTarget,
) -> io::Result<tokio::net::UnixStream> {
    let deadline = machine.call_timeout();
    match tokio::time::timeout(deadline, machine.agent().open_stream(target)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(io::Error::other(e.to_string())),
        Err(_) => Err(io::Error::from(io::ErrorKind::TimedOut)),
    }
}

/// A token no other forward of this daemon uses: a counter (not a random number:
/// `getrandom` blocks in a freshly booted host whose entropy pool is not ready, as in
/// the nested KVM test host), started from the clock so a restarted daemon does not
/// reuse its predecessor's tokens with a VM that outlived it.
pub(super) fn next_token() -> u64 {
    static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU64> = std::sync::OnceLock::new();
    NEXT.get_or_init(|| {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        std::sync::atomic::AtomicU64::new(start)
    })
    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[async_trait]
impl ForwardTarget for AgentForward {
    fn describe(&self) -> String {
        let short = self.id.get(..12).unwrap_or(&self.id);
        format!("port {} of container {short} in its VM", self.port)
    }

    async fn relay_tcp(&self, mut client: TcpStream) {
        let (mut out, mut back) = match self.open_pair(ForwardProtocol::Tcp).await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(target = %self.describe(), error = %e, "forwarding a connection");
                // As a direct connection to a closed port: a reset.
                let _ = client.set_zero_linger();
                return;
            }
        };
        let ending = {
            let (mut client_rd, mut client_wr) = client.split();
            forward::relay(&mut client_rd, &mut client_wr, &mut back, &mut out).await
        };
        if ending == Ending::Reset {
            let _ = client.set_zero_linger();
        }
    }

    async fn open_udp(&self) -> io::Result<UdpFlow> {
        let (out, back) = self.open_pair(ForwardProtocol::Udp).await?;
        Ok(UdpFlow {
            sender: Box::new(FramedSender(out)),
            receiver: Box::new(FramedReceiver(back)),
        })
    }
}

struct FramedSender(tokio::net::UnixStream);

#[async_trait]
impl DatagramSender for FramedSender {
    async fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        forward::write_datagram(&mut self.0, datagram).await
    }
}

struct FramedReceiver(tokio::net::UnixStream);

#[async_trait]
impl DatagramReceiver for FramedReceiver {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        forward::read_datagram(&mut self.0, buf).await
    }
}

/// What a container in a VM holds on the host for its ports: the listeners of its
/// published ports and, with automatic forwarding, the task that follows its listeners.
pub struct Forwards {
    listeners: Listeners,
    auto: Option<tokio::task::JoinHandle<()>>,
    auto_ports: Option<AutoPorts>,
}

impl Forwards {
    /// The automatically forwarded ports as they change (once; `None` without automatic
    /// forwarding).
    pub fn take_auto_ports(&mut self) -> Option<AutoPorts> {
        self.auto_ports.take()
    }

    /// Stops listening on every port (the automatic ones too).
    pub async fn close(self) {
        if let Some(task) = self.auto {
            task.abort();
            let _ = task.await;
        }
        ports::close(self.listeners).await;
    }
}

/// Listens on `c`'s published ports and relays them into `machine`; with `auto` (or `-P`)
/// also forwards every TCP port the container comes to listen on.
pub async fn publish(
    machine: &Arc<Machine>,
    c: &ContainerSpec,
    auto: bool,
) -> Result<(Forwards, Vec<PublishedPort>), BackendError> {
    let (listeners, published) = ports::publish(c, |b| {
        Arc::new(AgentForward {
            machine: machine.clone(),
            id: c.id.clone(),
            port: b.container_port,
        })
    })
    .await?;
    let mut auto_ports = None;
    let auto = (auto || c.publish_all).then(|| {
        let explicit: Vec<(u16, NetProtocol)> = c
            .ports
            .iter()
            .map(|b| (b.container_port, b.proto.into()))
            .collect();
        let (tx, rx) = tokio::sync::watch::channel(Vec::new());
        auto_ports = Some(rx);
        tokio::spawn(follow_listeners(
            machine.clone(),
            c.id.clone(),
            explicit,
            tx,
            ListenPlace::loopback(),
        ))
    });
    Ok((
        Forwards {
            listeners,
            auto,
            auto_ports,
        },
        published,
    ))
}

/// The ports automatic forwarding has open on the host now.
pub type AutoPorts = tokio::sync::watch::Receiver<Vec<PublishedPort>>;

/// Where automatic forwarding listens.
#[derive(Debug, Clone)]
pub struct ListenPlace {
    /// The address (each port on it).
    pub ip: IpAddr,
    /// The network namespace the listening sockets are made in; `None`: the daemon's.
    pub netns: Option<PathBuf>,
}

impl ListenPlace {
    /// `127.0.0.1` of the host, as Docker Desktop forwards a container's ports.
    pub fn loopback() -> ListenPlace {
        ListenPlace {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            netns: None,
        }
    }
}

/// Forwards each TCP and UDP port container `id` in `machine` serves on to the same
/// port at `place`, while it does, until the returned task is aborted or the container
/// goes; the receiver follows the ports forwarded.
pub fn forward_listeners(
    machine: Arc<Machine>,
    id: String,
    place: ListenPlace,
) -> (tokio::task::JoinHandle<()>, AutoPorts) {
    let (tx, rx) = tokio::sync::watch::channel(Vec::new());
    let task = tokio::spawn(follow_listeners(machine, id, Vec::new(), tx, place));
    (task, rx)
}

/// One report of the agent's listener watch.
#[derive(serde::Deserialize)]
struct ListenerReport {
    #[serde(default)]
    tcp: Vec<u16>,
    #[serde(default)]
    udp: Vec<u16>,
    #[serde(default)]
    error: Option<String>,
}

/// Forwards `PORT` at `place` (`127.0.0.1` on the host for the daemon) to each TCP and
/// UDP port container `id` serves on (but those `-p` publishes already), while it does;
/// `report` gets the forwarded set at each change.
async fn follow_listeners(
    machine: Arc<Machine>,
    id: String,
    explicit: Vec<(u16, NetProtocol)>,
    forwarded_ports: tokio::sync::watch::Sender<Vec<PublishedPort>>,
    place: ListenPlace,
) {
    let ip = place.ip;
    let short = id.get(..12).unwrap_or(&id).to_string();
    let stream = match machine
        .agent()
        .open_stream(StreamTarget::Listeners { id: id.clone() })
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(container = %short, "automatic port forwarding: {e}");
            return;
        }
    };
    let mut lines = tokio::io::BufReader::new(stream).lines();
    let mut open: HashMap<(u16, NetProtocol), vmrun_network::PublishedPort> = HashMap::new();
    let mut refused: HashSet<(u16, NetProtocol)> = HashSet::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let report: ListenerReport = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(container = %short, "a bad listener report {line:?}: {e}");
                break;
            }
        };
        if let Some(e) = report.error {
            tracing::warn!(container = %short, "automatic port forwarding stopped: {e}");
            break;
        }
        let tcp = report.tcp.into_iter().map(|p| (p, NetProtocol::Tcp));
        let udp = report.udp.into_iter().map(|p| (p, NetProtocol::Udp));
        let now: HashSet<(u16, NetProtocol)> =
            tcp.chain(udp).filter(|p| !explicit.contains(p)).collect();
        let gone: Vec<_> = open.keys().filter(|p| !now.contains(p)).copied().collect();
        for key in gone {
            if let Some(listener) = open.remove(&key) {
                listener.close().await;
                let (port, proto) = key;
                tracing::info!(container = %short, port, "stopped forwarding {ip}:{port}/{}", proto_name(proto));
            }
        }
        refused.retain(|p| now.contains(p));
        for &(port, proto) in &now {
            if open.contains_key(&(port, proto)) || refused.contains(&(port, proto)) {
                continue;
            }
            let spec = PortSpec {
                host_ip: ip,
                host_port: port,
                container_port: port,
                proto,
            };
            let target = Arc::new(AgentForward {
                machine: machine.clone(),
                id: id.clone(),
                port,
            });
            let name = proto_name(proto);
            match PortForwarder::publish_in(spec, target, place.netns.as_deref()).await {
                Ok(listener) => {
                    tracing::info!(container = %short, port, "forwarding {ip}:{port}/{name} to the container's port {port}");
                    open.insert((port, proto), listener);
                }
                Err(e) => {
                    tracing::warn!(container = %short, port, "not forwarding port {port}/{name}: {e}");
                    refused.insert((port, proto));
                }
            }
        }
        let mut forwarded: Vec<PublishedPort> = open
            .keys()
            .map(|&(port, proto)| PublishedPort {
                host_ip: ip.to_string(),
                host_port: port,
                container_port: port,
                proto: proto.into(),
            })
            .collect();
        forwarded.sort_by_key(|p| (p.container_port, p.proto == Protocol::Udp));
        forwarded_ports.send_if_modified(|old| {
            let changed = *old != forwarded;
            *old = forwarded;
            changed
        });
    }
    for (_, listener) in open.drain() {
        listener.close().await;
    }
    forwarded_ports.send_replace(Vec::new());
}

fn proto_name(p: NetProtocol) -> &'static str {
    match p {
        NetProtocol::Tcp => "tcp",
        NetProtocol::Udp => "udp",
    }
}
