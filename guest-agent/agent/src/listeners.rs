//! Which TCP and UDP ports a container serves on, as they come and go
//! ([`StreamTarget::Listeners`]), for the host's automatic port forwarding.
//!
//! The agent asks the kernel with `sock_diag` (`NETLINK_SOCK_DIAG`, `inet_diag_req_v2` for
//! `AF_INET` and `AF_INET6`: TCP sockets in state `LISTEN`, and UDP sockets bound but not
//! connected — state `CLOSE` — outside the ephemeral port range, since a bound unconnected
//! UDP socket on an ephemeral port is a client's): the kernel filters, so one dump
//! costs two netlink round trips however many connections the container has, where
//! `/proc/net/tcp` formats every socket as text. Neither can be watched (no inotify on
//! procfs, no sock_diag notification for `listen()`), so a watcher thread inside the
//! container's network namespace dumps every [`SCAN_INTERVAL`] and reports only changes:
//! a new listener is seen within that interval plus a host round trip; an idle container
//! costs four dumps a second, a few microseconds each, while someone watches it.
//!
//! The request and reply structs are few and fixed (`linux/inet_diag.h`), so they are
//! written here rather than pulling in a netlink crate for one message.
//!
//! [`StreamTarget::Listeners`]: vmrun_agent_protocol::StreamTarget::Listeners

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::procs::Entry;

/// How often the watcher asks the kernel.
pub const SCAN_INTERVAL: Duration = Duration::from_millis(250);

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const TCP_LISTEN: u32 = 10;
/// The state of UDP sockets that are not connected (`TCP_CLOSE`).
const UDP_UNCONNECTED: u32 = 7;
/// Linux's default `net.ipv4.ip_local_port_range`, when it cannot be read.
const DEFAULT_EPHEMERAL: (u16, u16) = (32768, 60999);
const NLMSG_HDR_LEN: usize = 16;
/// `inet_diag_req_v2`: family, protocol, ext, pad, states, then the 48-byte sockid.
const REQ_LEN: usize = 56;

/// The ports a container serves on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listening {
    /// TCP ports in `LISTEN`.
    pub tcp: BTreeSet<u16>,
    /// UDP ports bound and not connected, outside the ephemeral range.
    pub udp: BTreeSet<u16>,
}

/// Streams the container's listening ports to `host`, one JSON line
/// (`{"tcp":[80,8080],"udp":[53]}`) now and one at each change, until the container
/// exits or the host goes away.
pub async fn watch<S>(host: &mut S, pid: i32, entry: Arc<Entry>)
where
    S: AsyncWrite + Unpin,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Listening, String>>(4);
    let spawned = std::thread::Builder::new()
        .name("listeners".into())
        .spawn(move || scan_loop(pid, &entry, &tx));
    if let Err(e) = spawned {
        tracing::warn!("starting the listener watcher: {e}");
        return;
    }
    while let Some(ports) = rx.recv().await {
        let line = match ports {
            Ok(ports) => serde_json::json!({ "tcp": ports.tcp, "udp": ports.udp }),
            Err(e) => serde_json::json!({ "error": e }),
        };
        let mut line = line.to_string();
        line.push('\n');
        if host.write_all(line.as_bytes()).await.is_err() || host.flush().await.is_err() {
            // The receiver is dropped: the thread ends at its next send.
            return;
        }
    }
    let _ = host.shutdown().await;
}

/// The watcher thread: joins the namespace, then reports changes until the container has
/// exited or nobody listens for reports.
fn scan_loop(pid: i32, entry: &Entry, tx: &tokio::sync::mpsc::Sender<Result<Listening, String>>) {
    let sock = match crate::netns::join_netns(pid).and_then(|()| open_sock_diag()) {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.blocking_send(Err(format!("watching the container's listeners: {e}")));
            return;
        }
    };
    // Read inside the container's namespace: the range is per network namespace.
    let ephemeral = ephemeral_range();
    let mut last: Option<Listening> = None;
    while !entry.exited() && !tx.is_closed() {
        match listening_ports(&sock, ephemeral) {
            Ok(now) if last.as_ref() != Some(&now) => {
                if tx.blocking_send(Ok(now.clone())).is_err() {
                    return;
                }
                last = Some(now);
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.blocking_send(Err(format!("sock_diag: {e}")));
                return;
            }
        }
        std::thread::sleep(SCAN_INTERVAL);
    }
}

fn open_sock_diag() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it becomes an OwnedFd.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `net.ipv4.ip_local_port_range` of the calling thread's network namespace.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(str::parse::<u16>);
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .unwrap_or(DEFAULT_EPHEMERAL)
}

/// TCP ports in state LISTEN and UDP ports bound unconnected outside `ephemeral`
/// (inclusive), IPv4 and IPv6.
pub fn listening_ports(sock: &OwnedFd, ephemeral: (u16, u16)) -> io::Result<Listening> {
    let mut now = Listening::default();
    for family in [libc::AF_INET, libc::AF_INET6] {
        dump(
            sock,
            family as u8,
            libc::IPPROTO_TCP,
            TCP_LISTEN,
            &mut now.tcp,
        )?;
        dump(
            sock,
            family as u8,
            libc::IPPROTO_UDP,
            UDP_UNCONNECTED,
            &mut now.udp,
        )?;
    }
    now.udp
        .retain(|p| *p != 0 && !(ephemeral.0..=ephemeral.1).contains(p));
    Ok(now)
}

fn dump(
    sock: &OwnedFd,
    family: u8,
    protocol: i32,
    state: u32,
    ports: &mut BTreeSet<u16>,
) -> io::Result<()> {
    let mut req = [0u8; NLMSG_HDR_LEN + REQ_LEN];
    req[0..4].copy_from_slice(&((NLMSG_HDR_LEN + REQ_LEN) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    let body = &mut req[NLMSG_HDR_LEN..];
    body[0] = family;
    body[1] = protocol as u8;
    body[4..8].copy_from_slice(&(1u32 << state).to_ne_bytes());
    // SAFETY: `req` is a readable buffer of the length passed; the kernel is the peer
    // (an unbound netlink socket sends to pid 0).
    let sent = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: `buf` is writable for its whole length for the duration of the call.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        match parse_replies(&buf[..n as usize], ports)? {
            true => return Ok(()),
            false => continue,
        }
    }
}

/// Adds the local ports of one datagram's `inet_diag_msg`s to `ports`; true at `DONE`.
fn parse_replies(mut data: &[u8], ports: &mut BTreeSet<u16>) -> io::Result<bool> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    while data.len() >= NLMSG_HDR_LEN {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < NLMSG_HDR_LEN || len > data.len() {
            return Err(bad("a truncated netlink message"));
        }
        let payload = &data[NLMSG_HDR_LEN..len];
        match kind {
            NLMSG_DONE => {
                // A dump that failed (no diag module for the protocol: ENOENT) ends with
                // DONE carrying the negative errno, not with an ERROR message.
                let status = payload
                    .get(..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                return match status {
                    errno if errno < 0 => Err(io::Error::from_raw_os_error(errno.saturating_neg())),
                    _ => Ok(true),
                };
            }
            NLMSG_ERROR => {
                let errno = payload
                    .get(..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                return Err(io::Error::from_raw_os_error(errno.saturating_neg()));
            }
            SOCK_DIAG_BY_FAMILY => {
                // inet_diag_msg: family, state, timer, retrans, then sockid (sport first,
                // in network byte order).
                let sport = payload
                    .get(4..6)
                    .ok_or_else(|| bad("a short inet_diag_msg"))?;
                ports.insert(u16::from_be_bytes([sport[0], sport[1]]));
            }
            _ => {}
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        data = data.get(next..).unwrap_or(&[]);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_listener_come_and_go() {
        let sock = match open_sock_diag() {
            Ok(s) => s,
            Err(e) => {
                vmrun_test_skip::report(format_args!("no NETLINK_SOCK_DIAG here: {e}"));
                return;
            }
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let v6 = std::net::TcpListener::bind("[::1]:0").ok();
        // No ephemeral range here: every bound port counts.
        let all = (1, 0);
        let ports = listening_ports(&sock, all).unwrap().tcp;
        assert!(ports.contains(&port), "{port} in {ports:?}");
        if let Some(v6) = &v6 {
            let p6 = v6.local_addr().unwrap().port();
            assert!(ports.contains(&p6), "IPv6 {p6} in {ports:?}");
        }
        // A connection is not a listener.
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let client_port = client.local_addr().unwrap().port();
        drop(listener);
        let ports = listening_ports(&sock, all).unwrap().tcp;
        assert!(!ports.contains(&port), "closed {port} still in {ports:?}");
        assert!(!ports.contains(&client_port));
    }

    #[test]
    fn sees_a_udp_server_but_not_clients() {
        let sock = match open_sock_diag() {
            Ok(s) => s,
            Err(e) => {
                vmrun_test_skip::report(format_args!("no NETLINK_SOCK_DIAG here: {e}"));
                return;
            }
        };
        let all = (1, 0);
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        // A connected UDP socket is a client's.
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(("127.0.0.1", port)).unwrap();
        let client_port = client.local_addr().unwrap().port();
        let now = listening_ports(&sock, all).unwrap();
        assert!(now.udp.contains(&port), "{port} in {:?}", now.udp);
        assert!(
            !now.udp.contains(&client_port),
            "connected {client_port} in {:?}",
            now.udp
        );
        // Inside the ephemeral range it is taken for a client's too.
        let now = listening_ports(&sock, (port, port)).unwrap();
        assert!(
            !now.udp.contains(&port),
            "ephemeral {port} in {:?}",
            now.udp
        );
        drop(server);
        let now = listening_ports(&sock, all).unwrap();
        assert!(
            !now.udp.contains(&port),
            "closed {port} still in {:?}",
            now.udp
        );
    }

    #[test]
    fn replies_are_parsed_and_errors_reported() {
        let mut msg = vec![0u8; NLMSG_HDR_LEN + 72];
        let len = msg.len() as u32;
        msg[0..4].copy_from_slice(&len.to_ne_bytes());
        msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        msg[NLMSG_HDR_LEN + 4..NLMSG_HDR_LEN + 6].copy_from_slice(&8080u16.to_be_bytes());
        let mut done = vec![0u8; NLMSG_HDR_LEN + 4];
        let n = done.len() as u32;
        done[0..4].copy_from_slice(&n.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        msg.extend_from_slice(&done);
        let mut ports = BTreeSet::new();
        assert!(parse_replies(&msg, &mut ports).unwrap());
        assert_eq!(ports.into_iter().collect::<Vec<_>>(), vec![8080]);

        let mut err = vec![0u8; NLMSG_HDR_LEN + 4];
        let n = err.len() as u32;
        err[0..4].copy_from_slice(&n.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[NLMSG_HDR_LEN..].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        let e = parse_replies(&err, &mut BTreeSet::new()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        // A failed dump: DONE with the errno.
        let mut failed = err.clone();
        failed[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        let e = parse_replies(&failed, &mut BTreeSet::new()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let truncated = &msg[..10];
        assert!(!parse_replies(truncated, &mut BTreeSet::new()).unwrap());
        let mut lying = msg.clone();
        lying[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert!(parse_replies(&lying, &mut BTreeSet::new()).is_err());
    }
}
