//! Containers reaching out: `host.docker.internal` and `--add-host` in every mode, and
//! outbound networking of containers in VMs (their `eth0` is a TAP device whose frames
//! cross vsock to a `passt` on the host): TCP and UDP to servers this test runs on the
//! host's loopback (natively: on the bridge's own address, which is where the host is for
//! a native container), the name resolved through the container's hosts file, the
//! container's DNS server forwarded to the host's resolver, and `--network none` left
//! with loopback only.
//!
//! Needs root and the docker CLI; the VM variants also need a VM backend, the guest kernel,
//! the agent initramfs and `passt`, and skip, saying which, without them.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use vmrun_e2e::vm::{docker, isolation_daemon, shared_vm_daemon};
use vmrun_e2e::{netecho, require_root, require_tool, Daemon};

/// What the host's HTTP server answers.
const GREETING: &str = "hello from the host";

/// An HTTP server on `ip` answering every request with [`GREETING`]; its address.
fn http_server(ip: IpAddr) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).expect("binding the test's HTTP server");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = format!("{GREETING}\n");
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// A UDP server on `ip` answering every datagram with `re: <datagram>`; its address.
fn udp_server(ip: IpAddr) -> SocketAddr {
    let sock = UdpSocket::bind((ip, 0)).expect("binding the test's UDP server");
    let addr = sock.local_addr().expect("its address");
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let reply = [b"re: ".as_slice(), &buf[..n]].concat();
            let _ = sock.send_to(&reply, from);
        }
    });
    addr
}

/// The address `name` has in a hosts file's text.
fn hosts_address(hosts: &str, name: &str) -> Option<IpAddr> {
    hosts.lines().find_map(|l| {
        let mut fields = l.split_whitespace();
        let ip = fields.next()?;
        fields.any(|n| n == name).then(|| ip.parse().ok())?
    })
}

/// Runs `sh -c script` in a new container with `args` and returns its output.
fn run_sh(d: &Daemon, args: &[&str], script: &str) -> String {
    let mut argv = vec!["run", "--rm"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["busybox", "sh", "-c", script]);
    let out = docker(d, &argv);
    out.ok();
    out.stdout
}

/// The checks every mode passes: `host.docker.internal` and `--add-host` names in
/// `/etc/hosts`, and an HTTP fetch from the host by that name (server on `server_ip`).
fn reaches_the_host(d: &Daemon, args: &[&str], server_ip: IpAddr) {
    let server = http_server(server_ip);
    let mut with_extra = args.to_vec();
    with_extra.extend_from_slice(&["--add-host", "extra.test:10.1.2.3"]);
    let script = format!(
        "cat /etc/hosts; echo ---; wget -q -O- http://host.docker.internal:{}/",
        server.port()
    );
    let out = run_sh(d, &with_extra, &script);
    let (hosts, fetched) = out.split_once("---").expect("the separator");
    assert_eq!(
        hosts_address(hosts, "extra.test"),
        Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
        "{hosts}"
    );
    assert!(
        hosts_address(hosts, "host.docker.internal").is_some(),
        "{hosts}"
    );
    assert_eq!(fetched.trim(), GREETING, "{out}");
}

#[test]
fn native_containers_reach_the_host_by_name() {
    if !require_root() || !require_tool("docker") {
        return;
    }
    let d = Daemon::start();
    // Where the host is for a container on the default bridge: the bridge's address.
    let hosts = run_sh(&d, &[], "cat /etc/hosts");
    let gateway = hosts_address(&hosts, "host.docker.internal")
        .unwrap_or_else(|| panic!("no host.docker.internal in {hosts}"));
    reaches_the_host(&d, &[], gateway);

    // `--add-host NAME:host-gateway` is the same address; on the host network, loopback;
    // with no network, no way to the host and so no such line.
    let out = run_sh(
        &d,
        &["--add-host", "gw.test:host-gateway"],
        "cat /etc/hosts",
    );
    assert_eq!(hosts_address(&out, "gw.test"), Some(gateway), "{out}");
    let out = run_sh(&d, &["--network", "host"], "cat /etc/hosts");
    assert_eq!(
        hosts_address(&out, "host.docker.internal"),
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "{out}"
    );
    let out = run_sh(&d, &["--network", "none"], "cat /etc/hosts");
    assert_eq!(hosts_address(&out, "host.docker.internal"), None, "{out}");

    // A bad value is refused by the daemon, naming it.
    let bad = d.vmrun(&["run", "--rm", "--add-host", "nocolon", "busybox", "true"]);
    assert!(!bad.success(), "{bad}");
    assert!(
        bad.stderr.contains("invalid extra host \"nocolon\""),
        "{bad}"
    );
}

/// The VM checks: `eth0` up with the user-mode address, TCP by name and UDP to the
/// host's loopback, DNS through the host's resolver, and `--network none` with no eth0.
fn vm_container_networking(d: &Daemon, args: &[&str]) {
    reaches_the_host(d, args, IpAddr::V4(Ipv4Addr::LOCALHOST));

    let udp = udp_server(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let name = format!("vmnet-{}", std::process::id());
    let mut run = vec!["run", "-d", "--name", &name];
    run.extend_from_slice(args);
    run.extend_from_slice(&["busybox", "sleep", "600"]);
    docker(d, &run).ok();
    netecho::install(d, &name).expect("netecho in the container");
    let target = format!("host.docker.internal:{}", udp.port());
    let asked = docker(d, &["exec", &name, "netecho", "udpask", &target, "ping"]);
    asked.ok();
    assert_eq!(asked.stdout.trim(), "re: ping", "{asked}");

    let resolv = docker(d, &["exec", &name, "cat", "/etc/resolv.conf"]);
    assert!(resolv.stdout.contains("nameserver 10.0.2.3"), "{resolv}");
    let eth0 = docker(d, &["exec", &name, "ip", "-4", "addr", "show", "eth0"]);
    assert!(eth0.stdout.contains("inet 10.0.2.100/24"), "{eth0}");
    // DNS: the name the host resolves (a package mirror the test command reaches anyway)
    // resolves in the container through its nameserver, which forwards to the host's.
    let probe = "deb.debian.org";
    let host_resolves = std::process::Command::new("getent")
        .args(["hosts", probe])
        .output()
        .is_ok_and(|o| o.status.success());
    if host_resolves {
        let looked = docker(d, &["exec", &name, "nslookup", probe]);
        looked.ok();
        assert!(looked.stdout.contains("Address"), "{looked}");
    } else {
        vmrun_test_skip::report(format_args!(
            "container DNS: this host does not resolve {probe} itself"
        ));
    }
    docker(d, &["rm", "-f", &name]).ok();

    let mut none = args.to_vec();
    none.extend_from_slice(&["--network", "none"]);
    let out = run_sh(d, &none, "cat /proc/net/dev; cat /etc/hosts");
    assert!(!out.contains("eth0"), "{out}");
    assert_eq!(hosts_address(&out, "host.docker.internal"), None, "{out}");
}

#[test]
fn containers_in_their_own_vm_reach_the_host_and_the_network() {
    let Some(d) = isolation_daemon() else {
        return;
    };
    vm_container_networking(&d, &["--isolation", "vm"]);
}

#[test]
fn containers_in_the_shared_vm_reach_the_host_and_the_network() {
    let Some(d) = shared_vm_daemon() else {
        return;
    };
    vm_container_networking(&d, &[]);
    // Two containers at once, each with its own stack: both fetch.
    let server = http_server(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let fetch = format!("wget -q -O- http://host.docker.internal:{}/", server.port());
    let outs: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| run_sh(&d, &[], &fetch)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a fetch"))
            .collect()
    });
    for out in outs {
        assert_eq!(out.trim(), GREETING);
    }
}
