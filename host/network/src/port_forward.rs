//! Published ports: a userland proxy in the spirit of `docker-proxy`.
//!
//! Each [`PublishedPort`] owns a listening socket on the host and relays
//! every TCP connection, or every UDP client's datagrams, to the container.
//! Dropping it, or [`PublishedPort::close`], stops listening and ends the
//! connections it relays.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::NetworkError;
use crate::types::{PortSpec, Protocol};

/// How long a UDP flow lives without a reply from the container (as docker-proxy).
const UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest UDP datagram relayed.
const UDP_BUFFER: usize = 65_535;
/// How long to wait for the container to accept a relayed TCP connection.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts userland proxies for published ports.
pub struct PortForwarder;

/// A port being published. Stops when dropped.
#[derive(Debug)]
pub struct PublishedPort {
    spec: PortSpec,
    host_addr: SocketAddr,
    target: SocketAddr,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl PublishedPort {
    /// The spec it was published with (`host_port` as requested, maybe 0).
    pub fn spec(&self) -> PortSpec {
        self.spec
    }

    /// The address actually listened on.
    pub fn host_addr(&self) -> SocketAddr {
        self.host_addr
    }

    /// The port actually listened on (the chosen one when 0 was asked).
    pub fn host_port(&self) -> u16 {
        self.host_addr.port()
    }

    /// Where traffic goes.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Stops listening, ends every relayed connection, and waits until the
    /// listening socket is closed.
    pub async fn close(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for PublishedPort {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl PortForwarder {
    /// Listens on `spec.host_ip:spec.host_port` and relays to `target`.
    /// Must be called inside a tokio runtime.
    pub async fn publish(
        spec: PortSpec,
        target: SocketAddr,
    ) -> Result<PublishedPort, NetworkError> {
        let bind = SocketAddr::new(spec.host_ip, spec.host_port);
        let context = |e: io::Error| {
            NetworkError::io(format!("publish {bind}/{:?} -> {target}", spec.proto), e)
        };
        let cancel = CancellationToken::new();
        let (host_addr, task) = match spec.proto {
            Protocol::Tcp => {
                let listener = TcpListener::bind(bind).await.map_err(context)?;
                let host_addr = listener.local_addr().map_err(context)?;
                let task = tokio::spawn(serve_tcp(listener, target, cancel.clone()));
                (host_addr, task)
            }
            Protocol::Udp => {
                let socket = UdpSocket::bind(bind).await.map_err(context)?;
                let host_addr = socket.local_addr().map_err(context)?;
                let task = tokio::spawn(serve_udp(Arc::new(socket), target, cancel.clone()));
                (host_addr, task)
            }
        };
        tracing::debug!(%host_addr, %target, proto = ?spec.proto, "published port");
        Ok(PublishedPort {
            spec,
            host_addr,
            target,
            cancel,
            task: Some(task),
        })
    }
}

async fn serve_tcp(listener: TcpListener, target: SocketAddr, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    tokio::spawn(relay_tcp(client, target, cancel.child_token()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting on published port");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn relay_tcp(mut client: TcpStream, target: SocketAddr, cancel: CancellationToken) {
    let connect = tokio::time::timeout(TCP_CONNECT_TIMEOUT, TcpStream::connect(target));
    let mut upstream = tokio::select! {
        _ = cancel.cancelled() => return,
        connected = connect => match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%target, error = %e, "connecting to container");
                return;
            }
            Err(_) => {
                tracing::debug!(%target, "connecting to container timed out");
                return;
            }
        },
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        _ = cancel.cancelled() => {}
        result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = result {
                tracing::debug!(%target, error = %e, "relaying TCP");
            }
        }
    }
}

type UdpFlows = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

fn unspecified_like(target: &SocketAddr) -> SocketAddr {
    match target.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

async fn serve_udp(listener: Arc<UdpSocket>, target: SocketAddr, cancel: CancellationToken) {
    let flows: UdpFlows = Arc::default();
    let mut buffer = vec![0u8; UDP_BUFFER];
    loop {
        let (length, client) = tokio::select! {
            _ = cancel.cancelled() => return,
            received = listener.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(e) => {
                    tracing::debug!(error = %e, "receiving on published UDP port");
                    continue;
                }
            },
        };
        let existing = flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .cloned();
        let upstream = match existing {
            Some(upstream) => upstream,
            None => match open_udp_flow(&listener, &flows, client, target, &cancel).await {
                Ok(upstream) => upstream,
                Err(e) => {
                    tracing::debug!(%target, error = %e, "opening UDP flow");
                    continue;
                }
            },
        };
        if let Err(e) = upstream.send(&buffer[..length]).await {
            tracing::debug!(%target, error = %e, "sending UDP to container");
        }
    }
}

/// A connected socket towards the container for one client, and a task that
/// sends the container's replies back to that client until the flow idles.
async fn open_udp_flow(
    listener: &Arc<UdpSocket>,
    flows: &UdpFlows,
    client: SocketAddr,
    target: SocketAddr,
    cancel: &CancellationToken,
) -> io::Result<Arc<UdpSocket>> {
    let upstream = UdpSocket::bind(unspecified_like(&target)).await?;
    upstream.connect(target).await?;
    let upstream = Arc::new(upstream);
    flows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(client, upstream.clone());
    let (listener, flows, reply_socket, cancel) = (
        listener.clone(),
        flows.clone(),
        upstream.clone(),
        cancel.clone(),
    );
    tokio::spawn(async move {
        let mut buffer = vec![0u8; UDP_BUFFER];
        loop {
            let received = tokio::select! {
                _ = cancel.cancelled() => break,
                received = tokio::time::timeout(UDP_IDLE_TIMEOUT, reply_socket.recv(&mut buffer)) => received,
            };
            match received {
                Ok(Ok(length)) => {
                    if let Err(e) = listener.send_to(&buffer[..length], client).await {
                        tracing::debug!(%client, error = %e, "sending UDP reply");
                    }
                }
                // ECONNREFUSED from an ICMP port-unreachable: keep the flow.
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&client);
    });
    Ok(upstream)
}
