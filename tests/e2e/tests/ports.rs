//! Published ports (`-p`), the same checks for native containers (a userland proxy to the
//! container's bridge address) and for containers in microVMs (the host's listener relays
//! each connection and UDP flow over vsock to the guest agent): TCP and UDP both ways,
//! 100 concurrent connections, a large transfer with a checksum, half-closes from either
//! side, resets both ways, a port nobody listens on, IPv6 on the host side, and ports
//! freed when the container goes.
//!
//! The servers are `netecho` (`tests/e2e/fixtures/netecho.rs`) copied into the container.
//! Needs root and the docker CLI; the VM variants also need a VM backend, the guest kernel
//! and the agent initramfs, and skip, saying which, without them.

use std::hash::Hasher;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use vmrun_e2e::vm::{docker, isolation_daemon, shared_vm_daemon};
use vmrun_e2e::{netecho, require_root, require_tool, wait_for, Daemon};

/// What the container runs: every server once netecho is there.
const SERVERS: &str = "until [ -x /bin/netecho ]; do sleep 0.1; done; \
    netecho tcp 7000 & netecho udp 7001 & netecho greet 7002 & netecho reset 7003 & wait";
/// How long a client waits for an answer.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Host address of container port `spec` (`7000/tcp`) as `docker port` reports it, for
/// the host address family `v6`.
fn host_addr(d: &Daemon, name: &str, spec: &str, v6: bool) -> SocketAddr {
    let out = docker(d, &["port", name, spec]);
    out.ok();
    out.stdout
        .lines()
        .filter_map(|l| l.trim().parse::<SocketAddr>().ok())
        .find(|a| a.is_ipv6() == v6)
        .unwrap_or_else(|| {
            panic!(
                "no {} mapping of {spec}: {out}",
                if v6 { "IPv6" } else { "IPv4" }
            )
        })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let addr = match addr.ip().is_unspecified() {
        true => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        false => addr,
    };
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Sends `payload`, half-closes, and returns everything echoed until the server's end.
fn echo(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    let mut writer = s.try_clone().unwrap();
    let payload = payload.to_vec();
    let sender = std::thread::spawn(move || {
        writer.write_all(&payload).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    sender.join().unwrap();
    back
}

/// Streams `size` pseudo-random bytes through the echo server while reading them back;
/// returns whether the hashes and lengths agree, and the MiB/s each way.
fn transfer(addr: SocketAddr, size: usize) -> (bool, f64) {
    let mut s = connect(addr);
    let mut writer = s.try_clone().unwrap();
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            for b in chunk.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
            }
            let n = left.min(chunk.len());
            h.write(&chunk[..n]);
            writer.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        writer.shutdown(Shutdown::Write).unwrap();
        h.finish()
    });
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
        total += n;
    }
    let sent = sender.join().unwrap();
    let mib_s = size as f64 / (1024.0 * 1024.0) / started.elapsed().as_secs_f64();
    (sent == h.finish() && total == size, mib_s)
}

/// Whether reading `s` ends in a reset (not an orderly end).
fn reads_a_reset(mut s: TcpStream) -> Result<(), String> {
    let mut buf = [0u8; 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Err("an orderly end instead of a reset".into()),
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(format!("{e} instead of a reset")),
        }
    }
}

/// Every check, against container `srv` run with `isolation` extra flags.
fn check_published_ports(d: &Daemon, isolation: &[&str], transfer_mib: usize) {
    let mut args = vec!["run", "-d", "--name", "srv"];
    args.extend_from_slice(isolation);
    args.extend_from_slice(&[
        "-p",
        "7000",
        "-p",
        "[::1]::7000",
        "-p",
        "127.0.0.1::7001/udp",
        "-p",
        "127.0.0.1::7002",
        "-p",
        "127.0.0.1::7003",
        "-p",
        "127.0.0.1::7004",
        "busybox",
        "sh",
        "-c",
        SERVERS,
    ]);
    docker(d, &args).ok();
    if let Err(skip) = netecho::install(d, "srv") {
        skip.report();
        return;
    }
    wait_for(IO_TIMEOUT, "the servers to listen", || {
        let logs = docker(d, &["logs", "srv"]).stdout;
        (logs.matches("listening").count() == 4).then_some(())
    });

    let echo_v4 = host_addr(d, "srv", "7000/tcp", false);
    assert!(
        echo_v4.ip().is_unspecified(),
        "every address by default: {echo_v4}"
    );
    assert_eq!(echo(echo_v4, b"over tcp"), b"over tcp");
    let echo_v6 = host_addr(d, "srv", "7000/tcp", true);
    assert_eq!(echo(echo_v6, b"over tcp, from ::1"), b"over tcp, from ::1");

    // 100 connections at once, each its own 32 KiB.
    let started = Instant::now();
    let clients: Vec<_> = (0..100u8)
        .map(|i| {
            std::thread::spawn(move || echo(echo_v4, &vec![i; 32 * 1024]) == vec![i; 32 * 1024])
        })
        .collect();
    let ok = clients
        .into_iter()
        .map(|c| c.join())
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(ok, 100, "connections echoed intact");
    eprintln!("100 concurrent connections: {:?}", started.elapsed());

    let (intact, mib_s) = transfer(echo_v4, transfer_mib << 20);
    assert!(intact, "{transfer_mib} MiB came back changed");
    eprintln!("{transfer_mib} MiB echoed at {mib_s:.1} MiB/s each way");

    // The server half-closes first and still reads what the client sends afterwards.
    let greet = host_addr(d, "srv", "7002/tcp", false);
    let mut s = connect(greet);
    let mut hello = String::new();
    s.read_to_string(&mut hello).unwrap();
    assert_eq!(hello, "hello\n");
    s.write_all(b"bye!").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    wait_for(IO_TIMEOUT, "the server to count the client's bytes", || {
        docker(d, &["logs", "srv"])
            .stdout
            .contains("got 4 bytes")
            .then_some(())
    });

    // A reset by the server reaches the client as a reset.
    let mut s = connect(host_addr(d, "srv", "7003/tcp", false));
    s.write_all(b"x").unwrap();
    reads_a_reset(s).unwrap_or_else(|e| panic!("server reset: {e}"));
    // Nobody listens on 7004: the client is reset, as a direct connection would be refused
    // (so fast, at times, that the reset is what `connect` itself reports).
    let closed = host_addr(d, "srv", "7004/tcp", false);
    match TcpStream::connect_timeout(&closed, IO_TIMEOUT) {
        Ok(s) => reads_a_reset(s).unwrap_or_else(|e| panic!("closed port: {e}")),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "closed port: {e}"),
    }
    // A client's reset closes the server's side: the echo server keeps serving.
    let s = connect(echo_v4);
    nix::sys::socket::setsockopt(
        &s,
        nix::sys::socket::sockopt::Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .unwrap();
    drop(s);
    assert_eq!(echo(echo_v4, b"still there"), b"still there");

    // UDP: three clients, each answered on its own flow.
    let udp = host_addr(d, "srv", "7001/udp", false);
    for c in 0..3u8 {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for i in 0..10u8 {
            let msg = [c, i, 42];
            let mut buf = [0u8; 64];
            let answered = (0..5).any(|_| {
                client.send_to(&msg, udp).unwrap();
                matches!(client.recv_from(&mut buf), Ok((3, from)) if from == udp && buf[..3] == msg)
            });
            assert!(answered, "datagram {c}/{i} was not echoed");
        }
    }
    let big = UdpSocket::bind("127.0.0.1:0").unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    big.send_to(&[9u8; 60_000], udp).unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = big
        .recv_from(&mut buf)
        .expect("a 60,000-byte datagram echoed");
    assert_eq!(n, 60_000);

    // Gone with the container: every host port is free again.
    let freed = [echo_v4, echo_v6, greet];
    docker(d, &["rm", "-f", "srv"]).ok();
    for addr in freed {
        TcpListener::bind(addr).unwrap_or_else(|e| panic!("{addr} still taken: {e}"));
    }
    UdpSocket::bind(udp).unwrap_or_else(|e| panic!("{udp} still taken: {e}"));
}

#[test]
fn native_published_ports() {
    if !require_root() || !require_tool("docker") {
        return;
    }
    let d = Daemon::start();
    check_published_ports(&d, &[], 256);
}

#[test]
fn shared_vm_published_ports() {
    let Some(d) = shared_vm_daemon() else { return };
    check_published_ports(&d, &[], 256);
}

#[test]
fn microvm_published_ports() {
    let Some(d) = isolation_daemon() else { return };
    check_published_ports(&d, &["--isolation", "vm"], 64);
}

#[test]
fn publish_all_publishes_exposed_ports_on_any_free_port() {
    if !require_root() || !require_tool("docker") {
        return;
    }
    let d = Daemon::start();
    docker(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "exposer",
            "--expose",
            "7000",
            "--expose",
            "7001/udp",
            "-P",
            "-p",
            "127.0.0.1::7002",
            "busybox",
            "sleep",
            "300",
        ],
    )
    .ok();
    let tcp = host_addr(&d, "exposer", "7000/tcp", false);
    assert!(tcp.ip().is_unspecified() && tcp.port() != 0, "{tcp}");
    let udp = host_addr(&d, "exposer", "7001/udp", false);
    assert!(udp.port() != 0, "{udp}");
    // An explicit binding keeps its address.
    let explicit = host_addr(&d, "exposer", "7002/tcp", false);
    assert_eq!(explicit.ip().to_string(), "127.0.0.1");
    let info = d.inspect("exposer");
    assert_eq!(info["HostConfig"]["PublishAllPorts"], true, "{info}");
    docker(&d, &["rm", "-f", "exposer"]).ok();

    // The same through the vmrun CLI.
    d.vmrun(&[
        "run", "-d", "--name", "exposer2", "--expose", "7003/udp", "-P", "busybox", "sleep", "300",
    ])
    .ok();
    let tcp = host_addr(&d, "exposer2", "7003/udp", false);
    assert!(tcp.port() != 0, "{tcp}");
    let bad = d.vmrun(&["run", "--expose", "http", "busybox", "true"]);
    assert!(!bad.success() && bad.stderr.contains("--expose"), "{bad}");
    docker(&d, &["rm", "-f", "exposer2"]).ok();
}

/// A port nobody on this host listens on now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn shared_vm_forwards_listeners_as_they_come_and_go() {
    let Some(d) = shared_vm_daemon() else { return };
    docker(
        &d,
        &[
            "run", "-d", "--name", "auto", "-P", "busybox", "sleep", "600",
        ],
    )
    .ok();
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listen = format!("exec nc -ll -p {port} -e cat");
    docker(&d, &["exec", "-d", "auto", "sh", "-c", &listen]).ok();
    let started = Instant::now();
    let echoed = wait_for(IO_TIMEOUT, "the new listener to be forwarded", || {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
        let mut w = s.try_clone().ok()?;
        w.write_all(b"auto").ok()?;
        w.shutdown(Shutdown::Write).ok()?;
        let mut back = Vec::new();
        (&s).read_to_end(&mut back).ok()?;
        (!back.is_empty()).then_some(back)
    });
    assert_eq!(echoed, b"auto");
    eprintln!(
        "listener forwarded {:?} after `docker exec -d` returned",
        started.elapsed()
    );
    // `docker port` lists it, as a published port.
    let tcp_line = format!("{port}/tcp -> 127.0.0.1:{port}");
    wait_for(IO_TIMEOUT, "docker port to list the forward", || {
        let out = docker(&d, &["port", "auto"]);
        out.stdout.contains(&tcp_line).then_some(())
    });

    // A UDP server (bound, not connected, outside the ephemeral range) is forwarded too.
    if let Err(skip) = netecho::install(&d, "auto") {
        skip.report();
        docker(&d, &["rm", "-f", "auto"]).ok();
        return;
    }
    let udp_port = free_udp_port_below_ephemeral();
    let udp = SocketAddr::from(([127, 0, 0, 1], udp_port));
    docker(
        &d,
        &[
            "exec",
            "-d",
            "auto",
            "netecho",
            "udp",
            &udp_port.to_string(),
        ],
    )
    .ok();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = Instant::now();
    wait_for(IO_TIMEOUT, "the UDP server to be forwarded", || {
        client.send_to(b"udp", udp).ok()?;
        let mut buf = [0u8; 16];
        match client.recv_from(&mut buf) {
            Ok((3, from)) if from == udp && &buf[..3] == b"udp" => Some(()),
            _ => None,
        }
    });
    eprintln!(
        "UDP server forwarded {:?} after `docker exec -d` returned",
        started.elapsed()
    );
    let udp_line = format!("{udp_port}/udp -> 127.0.0.1:{udp_port}");
    let out = docker(&d, &["port", "auto"]);
    assert!(out.stdout.contains(&udp_line), "{udp_line:?} in {out}");
    assert!(out.stdout.contains(&tcp_line), "{tcp_line:?} in {out}");

    docker(
        &d,
        &[
            "exec",
            "auto",
            "sh",
            "-c",
            "kill $(pidof nc) $(pidof netecho)",
        ],
    )
    .ok();
    let started = Instant::now();
    wait_for(IO_TIMEOUT, "the forwards to stop", || {
        TcpListener::bind(addr).ok()?;
        UdpSocket::bind(udp).ok().map(drop)
    });
    eprintln!(
        "forwards gone {:?} after the servers were killed",
        started.elapsed()
    );
    let out = docker(&d, &["port", "auto"]);
    assert!(
        !out.stdout.contains(&tcp_line) && !out.stdout.contains(&udp_line),
        "closed forwards still listed: {out}"
    );
    docker(&d, &["rm", "-f", "auto"]).ok();
}

/// A UDP port free on the host and below Linux's default ephemeral range (32768+), where
/// the guest takes a bound socket for a server's.
fn free_udp_port_below_ephemeral() -> u16 {
    (20000..32000)
        .step_by(97)
        .map(|p| p + (std::process::id() % 97) as u16)
        .find(|p| {
            UdpSocket::bind(("127.0.0.1", *p)).is_ok()
                && TcpListener::bind(("127.0.0.1", *p)).is_ok()
        })
        .expect("a free UDP port below 32000")
}
