//! Published ports: a userland proxy in the spirit of `docker-proxy`.
//!
//! Each [`PublishedPort`] owns a listening socket on the host and relays every TCP
//! connection, or every UDP client's datagrams, to a [`ForwardTarget`]: the container's
//! address in native mode, the guest agent for containers in microVMs. Dropping it, or
//! [`PublishedPort::close`], stops listening and ends the connections it relays.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::NetworkError;
use crate::forward_target::{ForwardTarget, SocketTarget, UdpFlow};
use crate::types::{PortSpec, Protocol};

/// How long a UDP flow lives without a reply from the container (as docker-proxy).
const UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest UDP datagram relayed.
const UDP_BUFFER: usize = 65_535;
/// Datagrams queued for one flow while its far side is slow (or still opening); more are
/// dropped, as a full socket buffer would.
const UDP_QUEUE: usize = 256;

/// Starts userland proxies for published ports.
pub struct PortForwarder;

/// A port being published. Stops when dropped.
#[derive(Debug)]
pub struct PublishedPort {
    spec: PortSpec,
    host_addr: SocketAddr,
    target: String,
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

    /// Where traffic goes, in words.
    pub fn target(&self) -> &str {
        &self.target
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
    /// Listens on `spec.host_ip:spec.host_port` and relays to `target` directly.
    /// Must be called inside a tokio runtime.
    pub async fn publish(
        spec: PortSpec,
        target: SocketAddr,
    ) -> Result<PublishedPort, NetworkError> {
        Self::publish_to(spec, Arc::new(SocketTarget(target))).await
    }

    /// Listens on `spec.host_ip:spec.host_port` and relays through `target`.
    pub async fn publish_to(
        spec: PortSpec,
        target: Arc<dyn ForwardTarget>,
    ) -> Result<PublishedPort, NetworkError> {
        Self::publish_in(spec, target, None).await
    }

    /// [`PortForwarder::publish_to`] with the listening socket made in the network
    /// namespace at `netns` (for example a pod's, made by CNI: `spec.host_ip` is then an
    /// address of that namespace); its connections are served here as any other's.
    pub async fn publish_in(
        spec: PortSpec,
        target: Arc<dyn ForwardTarget>,
        netns: Option<&Path>,
    ) -> Result<PublishedPort, NetworkError> {
        let bind = SocketAddr::new(spec.host_ip, spec.host_port);
        let described = target.describe();
        let context = |e: io::Error| {
            NetworkError::io(format!("publish {bind}/{:?} -> {described}", spec.proto), e)
        };
        let cancel = CancellationToken::new();
        let bound = match netns {
            None => bind_socket(spec.proto, bind).map_err(context)?,
            Some(ns) => {
                let ns = ns.to_path_buf();
                let proto = spec.proto;
                tokio::task::spawn_blocking(move || {
                    crate::netns::run_in(&ns, move || bind_socket(proto, bind))
                })
                .await
                .map_err(|e| context(io::Error::other(e)))??
                .map_err(context)?
            }
        };
        let (host_addr, task) = match bound {
            BoundSocket::Tcp(listener) => {
                let listener = TcpListener::from_std(listener).map_err(context)?;
                let host_addr = listener.local_addr().map_err(context)?;
                let task = tokio::spawn(serve_tcp(listener, target, cancel.clone()));
                (host_addr, task)
            }
            BoundSocket::Udp(socket) => {
                let socket = UdpSocket::from_std(socket).map_err(context)?;
                let host_addr = socket.local_addr().map_err(context)?;
                let task = tokio::spawn(serve_udp(Arc::new(socket), target, cancel.clone()));
                (host_addr, task)
            }
        };
        tracing::debug!(%host_addr, target = %described, proto = ?spec.proto, "published port");
        Ok(PublishedPort {
            spec,
            host_addr,
            target: described,
            cancel,
            task: Some(task),
        })
    }
}

/// A listening socket made where it is to listen, before the runtime serves it.
enum BoundSocket {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

/// Binds `bind` (non-blocking, for the runtime), in the calling thread's namespace.
fn bind_socket(proto: Protocol, bind: SocketAddr) -> io::Result<BoundSocket> {
    Ok(match proto {
        Protocol::Tcp => {
            let listener = std::net::TcpListener::bind(bind)?;
            listener.set_nonblocking(true)?;
            BoundSocket::Tcp(listener)
        }
        Protocol::Udp => {
            let socket = std::net::UdpSocket::bind(bind)?;
            socket.set_nonblocking(true)?;
            BoundSocket::Udp(socket)
        }
    })
}

async fn serve_tcp(
    listener: TcpListener,
    target: Arc<dyn ForwardTarget>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    let _ = client.set_nodelay(true);
                    let (target, cancel) = (target.clone(), cancel.child_token());
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            () = target.relay_tcp(client) => {}
                        }
                    });
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

type UdpFlows = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

fn flows_of(
    flows: &UdpFlows,
) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>> {
    flows.lock().unwrap_or_else(|p| p.into_inner())
}

async fn serve_udp(
    listener: Arc<UdpSocket>,
    target: Arc<dyn ForwardTarget>,
    cancel: CancellationToken,
) {
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
        let datagram = buffer[..length].to_vec();
        let existing = flows_of(&flows).get(&client).cloned();
        let queue = match existing {
            Some(queue) if !queue.is_closed() => queue,
            _ => {
                let (tx, rx) = mpsc::channel(UDP_QUEUE);
                flows_of(&flows).insert(client, tx.clone());
                let flow = Flow {
                    listener: listener.clone(),
                    client,
                    flows: flows.clone(),
                };
                tokio::spawn(flow.run(target.clone(), rx, cancel.child_token()));
                tx
            }
        };
        if queue.try_send(datagram).is_err() {
            tracing::debug!(%client, "UDP flow queue full: datagram dropped");
        }
    }
}

/// One UDP client's flow: its datagrams go to the container, the container's replies come
/// back to it from the published port, until the container stays silent for
/// [`UDP_IDLE_TIMEOUT`].
struct Flow {
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    flows: UdpFlows,
}

impl Flow {
    async fn run(
        self,
        target: Arc<dyn ForwardTarget>,
        mut from_client: mpsc::Receiver<Vec<u8>>,
        cancel: CancellationToken,
    ) {
        let client = self.client;
        let opened = tokio::select! {
            _ = cancel.cancelled() => return self.forget(from_client),
            opened = target.open_udp() => opened,
        };
        let UdpFlow {
            mut sender,
            mut receiver,
        } = match opened {
            Ok(flow) => flow,
            Err(e) => {
                tracing::debug!(%client, target = %target.describe(), error = %e, "opening UDP flow");
                return self.forget(from_client);
            }
        };
        {
            let queue = &mut from_client;
            let outbound = async {
                while let Some(datagram) = queue.recv().await {
                    if let Err(e) = sender.send(&datagram).await {
                        tracing::debug!(%client, error = %e, "sending UDP to the container");
                        if e.kind() != io::ErrorKind::ConnectionRefused {
                            return;
                        }
                    }
                }
            };
            let listener = self.listener.clone();
            let inbound = async {
                let mut buffer = vec![0u8; UDP_BUFFER];
                loop {
                    match tokio::time::timeout(UDP_IDLE_TIMEOUT, receiver.recv(&mut buffer)).await {
                        Ok(Ok(Some(length))) => {
                            if let Err(e) = listener.send_to(&buffer[..length], client).await {
                                tracing::debug!(%client, error = %e, "sending UDP reply");
                            }
                        }
                        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                        Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return,
                    }
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                () = outbound => {}
                () = inbound => {}
            }
        }
        self.forget(from_client);
    }

    /// Takes this flow out of the table, unless a newer flow of the same client replaced
    /// it: a later datagram opens a new one.
    fn forget(self, queue: mpsc::Receiver<Vec<u8>>) {
        drop(queue);
        let mut flows = flows_of(&self.flows);
        if flows.get(&self.client).is_some_and(|q| q.is_closed()) {
            flows.remove(&self.client);
        }
    }
}
