//! Where a published port's traffic goes: [`ForwardTarget`]. The listeners, accept loop and
//! UDP flow table ([`crate::PortForwarder`]) are the same for every target; a target only
//! relays one accepted TCP connection and opens the far side of one UDP client's flow.
//! [`SocketTarget`] is a container's address on a host network (native mode); the daemon's
//! VM backends relay over the guest agent.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::{TcpStream, UdpSocket};

/// How long to wait for the container to accept a relayed TCP connection.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The far side of published ports.
#[async_trait]
pub trait ForwardTarget: Send + Sync + 'static {
    /// For logs and errors: where the traffic goes.
    fn describe(&self) -> String;
    /// Relays accepted connection `client` until both directions end. A target that cannot
    /// reach the container resets `client`, as the container would refuse it.
    async fn relay_tcp(&self, client: TcpStream);
    /// Opens the container's side of one UDP client's flow.
    async fn open_udp(&self) -> io::Result<UdpFlow>;
}

/// The container's side of a UDP flow: datagrams go out through `sender` and come back
/// through `receiver`, each used from one task.
pub struct UdpFlow {
    /// Towards the container.
    pub sender: Box<dyn DatagramSender>,
    /// From the container.
    pub receiver: Box<dyn DatagramReceiver>,
}

/// Sends datagrams towards a container.
#[async_trait]
pub trait DatagramSender: Send {
    /// Sends one datagram.
    async fn send(&mut self, datagram: &[u8]) -> io::Result<()>;
}

/// Receives a container's datagrams.
#[async_trait]
pub trait DatagramReceiver: Send {
    /// The next datagram's length in `buf`; `None` when the flow has ended. An
    /// `ECONNREFUSED` error (an ICMP port-unreachable) leaves the flow usable.
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
}

/// A container's address, reached directly (native mode: the host routes to it).
#[derive(Debug, Clone, Copy)]
pub struct SocketTarget(pub SocketAddr);

#[async_trait]
impl ForwardTarget for SocketTarget {
    fn describe(&self) -> String {
        self.0.to_string()
    }

    async fn relay_tcp(&self, mut client: TcpStream) {
        let target = self.0;
        let mut upstream =
            match tokio::time::timeout(TCP_CONNECT_TIMEOUT, TcpStream::connect(target)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%target, error = %e, "connecting to container");
                    let _ = client.set_zero_linger();
                    return;
                }
                Err(_) => {
                    tracing::debug!(%target, "connecting to container timed out");
                    let _ = client.set_zero_linger();
                    return;
                }
            };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(%target, error = %e, "relaying TCP");
            // One side was reset: pass it on to both.
            let _ = client.set_zero_linger();
            let _ = upstream.set_zero_linger();
        }
    }

    async fn open_udp(&self) -> io::Result<UdpFlow> {
        let unspecified = match self.0.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let socket = UdpSocket::bind(SocketAddr::new(unspecified, 0)).await?;
        socket.connect(self.0).await?;
        let socket = Arc::new(socket);
        Ok(UdpFlow {
            sender: Box::new(ConnectedUdp(socket.clone())),
            receiver: Box::new(ConnectedUdp(socket)),
        })
    }
}

/// A connected UDP socket as either end of a flow.
struct ConnectedUdp(Arc<UdpSocket>);

#[async_trait]
impl DatagramSender for ConnectedUdp {
    async fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.0.send(datagram).await.map(|_| ())
    }
}

#[async_trait]
impl DatagramReceiver for ConnectedUdp {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.0.recv(buf).await.map(Some)
    }
}
