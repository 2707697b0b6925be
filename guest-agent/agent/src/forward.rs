//! Published ports' connections ([`StreamTarget::Forward`]): the agent opens a socket
//! inside the container's network namespace, towards its loopback, and relays the host's
//! framed connection to it ([`vmrun_agent_protocol::forward`]); a TCP connection's
//! bytes come back on a second connection of the host's ([`PendingReturns`]).
//!
//! The socket is made on a short-lived thread that has joined the container's network
//! namespace (`setns` changes only the calling thread's namespace, and the agent's runtime
//! thread must stay in the guest's); once made, a socket keeps its namespace wherever it
//! is used, so the relay runs on the agent's runtime like any other stream.
//!
//! [`StreamTarget::Forward`]: vmrun_agent_protocol::StreamTarget::Forward

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use vmrun_agent_protocol::forward::{self, Ending, MAX_CHUNK};
use vmrun_agent_protocol::{AgentError, ErrorKind, ForwardProtocol};

/// How long connecting to the container's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A socket made inside a container's network namespace, ready for the relay.
pub enum Upstream {
    /// Connected to the container's TCP port.
    Tcp(tokio::net::TcpStream),
    /// Connected to the container's UDP port.
    Udp(tokio::net::UdpSocket),
}

/// Connects to `port` in the network namespace of process `pid`.
pub async fn open(pid: i32, port: u16, protocol: ForwardProtocol) -> Result<Upstream, AgentError> {
    let made = crate::netns::in_netns(pid, move || match protocol {
        ForwardProtocol::Tcp => connect_tcp(port).map(StdUpstream::Tcp),
        ForwardProtocol::Udp => connect_udp(port).map(StdUpstream::Udp),
    })
    .await
    .map_err(|e| {
        let kind = match e.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        };
        AgentError::new(
            kind,
            format!("connecting to port {port} in the container: {e}"),
        )
    })?;
    let tokio_err = |e: io::Error| AgentError::new(ErrorKind::Internal, e.to_string());
    match made {
        StdUpstream::Tcp(s) => {
            s.set_nonblocking(true).map_err(tokio_err)?;
            let _ = s.set_nodelay(true);
            Ok(Upstream::Tcp(
                tokio::net::TcpStream::from_std(s).map_err(tokio_err)?,
            ))
        }
        StdUpstream::Udp(s) => {
            s.set_nonblocking(true).map_err(tokio_err)?;
            Ok(Upstream::Udp(
                tokio::net::UdpSocket::from_std(s).map_err(tokio_err)?,
            ))
        }
    }
}

/// Where a forward and its return connection meet, by token: the host opens both at
/// once, so either may come first.
#[derive(Default)]
pub struct PendingReturns {
    slots: Mutex<HashMap<u64, Slot>>,
}

/// One side of a rendezvous, waiting for the other.
enum Slot {
    /// The forward waits for its return connection.
    Waiting(oneshot::Sender<ReturnStream>),
    /// The return connection came first (at this time).
    Arrived(ReturnStream, std::time::Instant),
}

/// A return connection (the agent only writes to it).
pub type ReturnStream = Box<dyn AsyncWrite + Send + Unpin>;

/// How long either side of a forward waits for the other.
const RETURN_TIMEOUT: Duration = Duration::from_secs(30);

impl PendingReturns {
    /// The slots, less return connections whose forward never came.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|_, slot| match slot {
            Slot::Arrived(_, at) => at.elapsed() < RETURN_TIMEOUT,
            Slot::Waiting(tx) => !tx.is_closed(),
        });
        slots
    }

    /// The return connection `token` names, now or when it comes.
    fn expect(&self, token: u64) -> oneshot::Receiver<ReturnStream> {
        let (tx, rx) = oneshot::channel();
        let mut slots = self.lock();
        match slots.remove(&token) {
            Some(Slot::Arrived(stream, _)) => {
                let _ = tx.send(stream);
            }
            _ => {
                slots.insert(token, Slot::Waiting(tx));
            }
        }
        rx
    }

    /// Drops what waits under `token` (its forward failed before the ready reply).
    pub fn forget(&self, token: u64) {
        self.lock().remove(&token);
    }

    /// Hands return connection `stream` to the forward `token` names, or keeps it until
    /// that forward comes (for [`RETURN_TIMEOUT`]).
    pub fn deliver(&self, token: u64, stream: ReturnStream) {
        let mut slots = self.lock();
        match slots.remove(&token) {
            Some(Slot::Waiting(tx)) => {
                if let Err(stream) = tx.send(stream) {
                    drop(stream);
                }
            }
            _ => {
                slots.insert(token, Slot::Arrived(stream, std::time::Instant::now()));
            }
        }
    }
}

/// Serves a forward connection `host` whose `StreamReady` has gone out: bytes or
/// datagrams from it go into the container, and the container's go back on the return
/// connection `pending` waits for (registered before the ready reply).
pub async fn relay<S>(
    host: &mut S,
    upstream: Upstream,
    returns: &PendingReturns,
    pending: (u64, oneshot::Receiver<ReturnStream>),
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(mut back) = take_return(returns, pending).await else {
        if let Upstream::Tcp(tcp) = &upstream {
            let _ = tcp.set_zero_linger();
        }
        return;
    };
    match upstream {
        Upstream::Tcp(mut tcp) => {
            let ending = {
                let (mut tcp_rd, mut tcp_wr) = tcp.split();
                forward::relay(&mut tcp_rd, &mut tcp_wr, host, &mut back).await
            };
            if ending == Ending::Reset {
                // Dropped with a zero linger: the container sees a reset, as it would
                // had the client's connection reached it directly.
                let _ = tcp.set_zero_linger();
            } else {
                let _ = back.shutdown().await;
            }
        }
        Upstream::Udp(udp) => relay_udp(host, &mut back, &udp).await,
    }
}

/// The return connection `pending` waits for, once it has come; `None` (and the slot
/// forgotten) when it did not come within [`RETURN_TIMEOUT`].
pub async fn take_return(
    returns: &PendingReturns,
    pending: (u64, oneshot::Receiver<ReturnStream>),
) -> Option<ReturnStream> {
    let (token, waiting) = pending;
    match tokio::time::timeout(RETURN_TIMEOUT, waiting).await {
        Ok(Ok(back)) => Some(back),
        _ => {
            returns.forget(token);
            tracing::debug!(token, "no return connection came");
            None
        }
    }
}

/// Registers the return connection (`token`) of a forward before its ready reply.
pub fn prepare(
    returns: &PendingReturns,
    token: Option<u64>,
) -> Result<(u64, oneshot::Receiver<ReturnStream>), AgentError> {
    match token {
        Some(token) => Ok((token, returns.expect(token))),
        None => Err(AgentError::new(
            ErrorKind::BadRequest,
            "a forward needs a return_token",
        )),
    }
}

/// Datagrams from `host` into the container and back on `back`, until the host closes
/// the flow.
async fn relay_udp<S>(host: &mut S, back: &mut ReturnStream, udp: &tokio::net::UdpSocket)
where
    S: AsyncRead + Unpin,
{
    let to_container = async {
        let mut buf = vec![0u8; MAX_CHUNK];
        while let Ok(Some(n)) = forward::read_datagram(host, &mut buf).await {
            if let Err(e) = udp.send(&buf[..n]).await {
                tracing::debug!("forwarding a datagram into the container: {e}");
            }
        }
    };
    let to_host = async {
        let mut buf = vec![0u8; MAX_CHUNK];
        loop {
            match udp.recv(&mut buf).await {
                Ok(n) => {
                    if forward::write_datagram(back, &buf[..n]).await.is_err() {
                        return;
                    }
                }
                // An ICMP port-unreachable for an earlier datagram: the flow goes on.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    tracing::debug!("receiving from the container: {e}");
                    return;
                }
            }
        }
    };
    tokio::select! {
        () = to_container => {}
        () = to_host => {}
    }
}

enum StdUpstream {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

/// The container's port on its IPv4 loopback, else on its IPv6 one (a server that
/// listens only on `::1`).
fn connect_tcp(port: u16) -> io::Result<TcpStream> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            // Where IPv6 is off, the IPv4 refusal is the answer.
            TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|_| e)
        }
        other => other,
    }
}

fn connect_udp(port: u16) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    s.connect((Ipv4Addr::LOCALHOST, port))?;
    Ok(s)
}
