//! Published ports of containers in microVMs: the listener is on the host
//! (`vmrun_network::PortForwarder`, as for native containers) and every accepted TCP
//! connection, or every UDP client's flow, is its own stream to the guest agent
//! ([`StreamTarget::Forward`]), which connects inside the container's network namespace.
//! The bytes are framed as `vmrun_agent_protocol::forward` says, so half-closes and
//! resets cross the VM boundary whichever vsock path carries them.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use vmrun_agent_protocol::forward::{self, Ending};
use vmrun_agent_protocol::{ForwardProtocol, StreamTarget};
use vmrun_network::{DatagramReceiver, DatagramSender, ForwardTarget, UdpFlow};

use super::machine::{Machine, CALL_TIMEOUT};
use crate::backend::ports::{self, Listeners};
use crate::backend::{BackendError, ContainerSpec, PublishedPort};

/// Port `port` of container `id`, in `machine`.
struct AgentForward {
    machine: Arc<Machine>,
    id: String,
    port: u16,
}

impl AgentForward {
    async fn open(&self, protocol: ForwardProtocol) -> io::Result<tokio::net::UnixStream> {
        let target = StreamTarget::Forward {
            id: self.id.clone(),
            port: self.port,
            protocol,
        };
        match tokio::time::timeout(CALL_TIMEOUT, self.machine.agent().open_stream(target)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(io::Error::other(e.to_string())),
            Err(_) => Err(io::Error::from(io::ErrorKind::TimedOut)),
        }
    }
}

#[async_trait]
impl ForwardTarget for AgentForward {
    fn describe(&self) -> String {
        let short = self.id.get(..12).unwrap_or(&self.id);
        format!("port {} of container {short} in its VM", self.port)
    }

    async fn relay_tcp(&self, mut client: TcpStream) {
        let stream = match self.open(ForwardProtocol::Tcp).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(target = %self.describe(), error = %e, "forwarding a connection");
                // As a direct connection to a closed port: a reset.
                let _ = client.set_zero_linger();
                return;
            }
        };
        let (mut guest_rd, mut guest_wr) = stream.into_split();
        let ending = {
            let (mut client_rd, mut client_wr) = client.split();
            forward::relay(&mut client_rd, &mut client_wr, &mut guest_rd, &mut guest_wr).await
        };
        if ending == Ending::Reset {
            let _ = client.set_zero_linger();
        }
    }

    async fn open_udp(&self) -> io::Result<UdpFlow> {
        let (rd, wr) = self.open(ForwardProtocol::Udp).await?.into_split();
        Ok(UdpFlow {
            sender: Box::new(FramedSender(wr)),
            receiver: Box::new(FramedReceiver(rd)),
        })
    }
}

struct FramedSender(OwnedWriteHalf);

#[async_trait]
impl DatagramSender for FramedSender {
    async fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        forward::write_datagram(&mut self.0, datagram).await
    }
}

struct FramedReceiver(OwnedReadHalf);

#[async_trait]
impl DatagramReceiver for FramedReceiver {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        forward::read_datagram(&mut self.0, buf).await
    }
}

/// Listens on `c`'s published ports and relays them into `machine`.
pub async fn publish(
    machine: &Arc<Machine>,
    c: &ContainerSpec,
) -> Result<(Listeners, Vec<PublishedPort>), BackendError> {
    ports::publish(c, |b| {
        Arc::new(AgentForward {
            machine: machine.clone(),
            id: c.id.clone(),
            port: b.container_port,
        })
    })
    .await
}
