//! A user-defined network with two containers: namespaces, addressing,
//! connectivity, hosts files, NAT rules, detach and removal.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use common::{require_root, TestEnv};
use vmrun_network::{netns, CreateOptions, Driver, NetworkError};

#[test]
fn two_containers_on_a_user_network() {
    require_root!();
    let env = TestEnv::new("a", "10.251.0.0/24");
    let manager = env.manager();
    let network = manager
        .create(
            "vmtest-net-a",
            CreateOptions {
                subnet: Some("10.251.1.0/24".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(network.driver, Driver::Bridge);
    assert_eq!(network.gateway, Some(Ipv4Addr::new(10, 251, 1, 1)));
    let bridge = network.bridge.clone().unwrap();
    assert!(
        bridge.starts_with("vmta-") && bridge.len() == 15,
        "{bridge}"
    );
    assert!(common::host_link_exists(&bridge));
    assert!(matches!(
        manager.create("vmtest-net-a", CreateOptions::default()),
        Err(NetworkError::AlreadyExists(_))
    ));

    let started = Instant::now();
    let one = manager
        .attach(env.request("vmtest-a1", "vmtest-net-a"))
        .unwrap();
    eprintln!("attach took {:?}", started.elapsed());
    let two = manager
        .attach(env.request("vmtest-a2", "vmtest-net-a"))
        .unwrap();
    assert!(matches!(
        manager.attach(env.request("vmtest-a2", "vmtest-net-a")),
        Err(NetworkError::AlreadyAttached(_))
    ));
    assert!(matches!(
        manager.attach(env.request("vmtest-a3", "no-such-network")),
        Err(NetworkError::NotFound(_))
    ));

    let (ip1, ip2) = (one.ip.unwrap(), two.ip.unwrap());
    assert_eq!(ip1, Ipv4Addr::new(10, 251, 1, 2));
    assert_eq!(ip2, Ipv4Addr::new(10, 251, 1, 3));
    assert_eq!(one.prefix_len, 24);
    assert_eq!(one.gateway, Some(Ipv4Addr::new(10, 251, 1, 1)));
    assert_eq!(one.mac.as_deref(), Some("02:42:0a:fb:01:02"));
    let ns1 = one.netns_path.clone().unwrap();
    let ns2 = two.netns_path.clone().unwrap();
    assert_eq!(ns1, env.config.netns_dir.join("vmtest-a1"));
    assert!(netns::is_netns(&ns1) && netns::is_netns(&ns2));
    assert_eq!(manager.endpoint("vmtest-a1"), Some(one.clone()));
    assert_eq!(manager.inspect("vmtest-net-a").unwrap().containers.len(), 2);
    // The namespace's way out, as a pod's VM network reads it from CNI's namespace.
    assert_eq!(
        netns::default_route(&ns1).unwrap(),
        Some((
            "10.251.1.2/24".parse().unwrap(),
            Ipv4Addr::new(10, 251, 1, 1)
        ))
    );

    if common::have("nsenter") && common::have("ip") {
        let (ok, addr) = common::in_netns(&ns1, &["ip", "-o", "addr", "show", "eth0"]);
        assert!(ok, "{addr}");
        assert!(addr.contains("inet 10.251.1.2/24"), "{addr}");
        let (_, link) = common::in_netns(&ns1, &["ip", "-o", "link", "show", "eth0"]);
        assert!(
            link.contains("02:42:0a:fb:01:02") && link.contains(",UP"),
            "{link}"
        );
        let (_, route) = common::in_netns(&ns1, &["ip", "route", "show", "default"]);
        assert!(route.contains("default via 10.251.1.1 dev eth0"), "{route}");
        let (_, lo) = common::in_netns(&ns1, &["ip", "-o", "link", "show", "lo"]);
        assert!(lo.contains("UP"), "{lo}");
        if common::have("busybox") {
            let target = ip2.to_string();
            let (ok, out) =
                common::in_netns(&ns1, &["busybox", "ping", "-c", "1", "-W", "2", &target]);
            assert!(ok, "ping {target} from a1: {out}");
        }
    } else {
        eprintln!("nsenter/ip missing: skipping the namespace inspection part");
    }

    // TCP from container 2's namespace to container 1 by IP.
    let server = SocketAddr::new(ip1.into(), 7001);
    common::tcp_echo_in(&ns1, server);
    assert_eq!(
        common::tcp_round_trip_from(&ns2, server, b"hello a1"),
        b"hello a1"
    );
    // And to the gateway's side: the host reaches the container over the bridge.
    assert_eq!(
        common::round_trip(std::net::TcpStream::connect(server).unwrap(), b"from host"),
        b"from host"
    );

    // Hosts files: own line and each other's names.
    let hosts1 = std::fs::read_to_string(env.hosts_file("vmtest-a1")).unwrap();
    let hosts2 = std::fs::read_to_string(env.hosts_file("vmtest-a2")).unwrap();
    assert!(hosts1.starts_with("127.0.0.1\tlocalhost\n"), "{hosts1}");
    assert!(
        hosts1.contains("10.251.1.2\tvmtest-a1-host vmtest-a1-name vmtest-a1-alias\n"),
        "{hosts1}"
    );
    assert!(
        hosts1.contains("10.251.1.3\tvmtest-a2-host vmtest-a2-name vmtest-a2-alias\n"),
        "{hosts1}"
    );
    assert!(
        hosts2.contains("10.251.1.2\tvmtest-a1-host vmtest-a1-name vmtest-a1-alias\n"),
        "{hosts2}"
    );
    // Extra names: `host-gateway` is the bridge's address, others as given.
    assert!(
        hosts1.ends_with("10.251.1.1\thost.docker.internal\n10.9.8.7\tdb.example\n"),
        "{hosts1}"
    );
    let inode2 = std::fs::metadata(env.hosts_file("vmtest-a2"))
        .unwrap()
        .ino();

    // NAT and forwarding rules exist.
    if common::have("iptables") {
        for rule in vmrun_network::bridge_rules(&bridge, &"10.251.1.0/24".parse().unwrap(), false) {
            assert!(
                vmrun_network::rule_exists(&rule).unwrap(),
                "missing {rule:?}"
            );
        }
        let nat = std::process::Command::new("iptables")
            .args(["-w", "-t", "nat", "-S", "POSTROUTING"])
            .output()
            .unwrap();
        let nat = String::from_utf8_lossy(&nat.stdout);
        assert!(
            nat.contains(&format!(
                "-A POSTROUTING -s 10.251.1.0/24 ! -o {bridge} -j MASQUERADE"
            )),
            "{nat}"
        );
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );

    // Removing a network in use is refused.
    assert!(matches!(
        manager.remove("vmtest-net-a"),
        Err(NetworkError::InUse { .. })
    ));

    // Detach 1: veth, namespace and address go; 2's hosts file is updated in place.
    let ports = |b: &str| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(format!("/sys/class/net/{b}/brif"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    let ports_before = ports(&bridge);
    assert_eq!(ports_before.len(), 2);
    manager.detach("vmtest-a1").unwrap();
    manager.detach("vmtest-a1").unwrap();
    // The veth is deleted in the background.
    assert!(common::eventually(|| ports(&bridge).len() == 1));
    for gone in ports_before.difference(&ports(&bridge)) {
        assert!(
            common::eventually(|| !common::host_link_exists(gone)),
            "{gone} left"
        );
    }
    assert!(!ns1.exists());
    assert_eq!(manager.endpoint("vmtest-a1"), None);
    let hosts2 = std::fs::read_to_string(env.hosts_file("vmtest-a2")).unwrap();
    assert!(!hosts2.contains("vmtest-a1"), "{hosts2}");
    assert_eq!(
        std::fs::metadata(env.hosts_file("vmtest-a2"))
            .unwrap()
            .ino(),
        inode2
    );
    // The released address comes back later, after the round-robin cursor.
    let three = manager
        .attach(env.request("vmtest-a3", "vmtest-net-a"))
        .unwrap();
    assert_eq!(three.ip, Some(Ipv4Addr::new(10, 251, 1, 4)));

    manager.detach("vmtest-a2").unwrap();
    manager.detach("vmtest-a3").unwrap();
    manager.remove("vmtest-net-a").unwrap();
    assert!(!common::host_link_exists(&bridge));
    if common::have("iptables") {
        for rule in vmrun_network::bridge_rules(&bridge, &"10.251.1.0/24".parse().unwrap(), false) {
            assert!(!vmrun_network::rule_exists(&rule).unwrap(), "left {rule:?}");
        }
    }
    assert!(matches!(
        manager.inspect("vmtest-net-a"),
        Err(NetworkError::NotFound(_))
    ));
}

#[test]
fn default_bridge_none_and_host_networks() {
    require_root!();
    let env = TestEnv::new("b", "10.251.2.0/24");
    let manager = env.manager();
    let names: Vec<String> = manager.list().into_iter().map(|n| n.name).collect();
    for predefined in ["bridge", "host", "none"] {
        assert!(names.iter().any(|n| n == predefined), "{names:?}");
        assert!(matches!(
            manager.remove(predefined),
            Err(NetworkError::Predefined(_))
        ));
    }
    assert!(common::host_link_exists("vmtbb"));

    // Default bridge: own entry only, peers are not listed.
    let one = manager.attach(env.request("vmtest-b1", "bridge")).unwrap();
    let two = manager.attach(env.request("vmtest-b2", "bridge")).unwrap();
    assert_eq!(one.ip, Some(Ipv4Addr::new(10, 251, 2, 2)));
    let hosts1 = std::fs::read_to_string(env.hosts_file("vmtest-b1")).unwrap();
    assert!(hosts1.contains("10.251.2.2\tvmtest-b1-host"), "{hosts1}");
    assert!(!hosts1.contains("vmtest-b2"), "{hosts1}");
    // Containers on the default bridge still reach each other by IP.
    let server = SocketAddr::new(one.ip.unwrap().into(), 7002);
    common::tcp_echo_in(one.netns_path.as_ref().unwrap(), server);
    assert_eq!(
        common::tcp_round_trip_from(two.netns_path.as_ref().unwrap(), server, b"ping"),
        b"ping"
    );

    // "none": a namespace with only lo.
    let none = manager.attach(env.request("vmtest-b3", "none")).unwrap();
    let path = none.netns_path.clone().unwrap();
    assert!(netns::is_netns(&path));
    assert_eq!(none.ip, None);
    if common::have("nsenter") && common::have("ip") {
        let (_, links) = common::in_netns(&path, &["ip", "-o", "link"]);
        assert_eq!(links.lines().count(), 1, "{links}");
        assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    }
    let hosts3 = std::fs::read_to_string(env.hosts_file("vmtest-b3")).unwrap();
    assert!(hosts3.starts_with("127.0.0.1\tlocalhost"), "{hosts3}");
    // No network: no way to the host, so only the fixed extra name.
    assert!(!hosts3.contains("host.docker.internal"), "{hosts3}");
    assert!(hosts3.ends_with("10.9.8.7\tdb.example\n"), "{hosts3}");

    // "host": no namespace, the host's hosts file, and the host on loopback.
    let host = manager.attach(env.request("vmtest-b4", "host")).unwrap();
    assert_eq!(host.netns_path, None);
    assert_eq!(
        std::fs::read_to_string(env.hosts_file("vmtest-b4")).unwrap(),
        std::fs::read_to_string("/etc/hosts").unwrap()
            + "127.0.0.1\thost.docker.internal\n10.9.8.7\tdb.example\n"
    );

    for id in ["vmtest-b1", "vmtest-b2", "vmtest-b3", "vmtest-b4"] {
        manager.detach(id).unwrap();
    }
    assert!(!path.exists());
}

#[test]
fn automatic_subnet_avoids_host_routes() {
    require_root!();
    let env = TestEnv::new("c", "10.251.3.0/24");
    let manager = env.manager();
    let taken: Vec<vmrun_network::Ipv4Net> = manager
        .list()
        .into_iter()
        .filter_map(|n| n.subnet)
        .collect();
    let network = manager
        .create("vmtest-net-c", CreateOptions::default())
        .unwrap();
    let subnet = network.subnet.unwrap();
    assert!(vmrun_network::candidate_subnets().any(|c| c == subnet));
    assert!(!taken
        .iter()
        .any(|t| t.contains(&subnet.network()) || subnet.contains(&t.network())));
    // Not overlapping any route the host had (read back via `ip route`).
    let routes = std::process::Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&routes.stdout).lines() {
        let Some(first) = line
            .split_whitespace()
            .find(|w| w.contains('/') || w.parse::<Ipv4Addr>().is_ok())
        else {
            continue;
        };
        if line.contains(network.bridge.as_deref().unwrap()) {
            continue;
        }
        let Ok(net) = first
            .parse::<vmrun_network::Ipv4Net>()
            .or_else(|_| format!("{first}/32").parse())
        else {
            continue;
        };
        assert!(
            !(net.contains(&subnet.network()) || subnet.contains(&net.network())),
            "{subnet} overlaps {line}"
        );
    }
    let endpoint = manager
        .attach(env.request("vmtest-c1", "vmtest-net-c"))
        .unwrap();
    assert!(subnet.contains(&endpoint.ip.unwrap()));
    manager.detach("vmtest-c1").unwrap();
    manager.remove(&network.id[..12]).unwrap();
}

#[test]
fn attach_and_detach_take_milliseconds() {
    require_root!();
    let env = TestEnv::new("t", "10.251.7.0/24");
    let manager = env.manager();
    manager
        .create(
            "vmtest-net-t",
            CreateOptions {
                subnet: Some("10.251.8.0/24".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
    const COUNT: u32 = 10;
    let started = Instant::now();
    for i in 0..COUNT {
        manager
            .attach(env.request(&format!("vmtest-t{i}"), "vmtest-net-t"))
            .unwrap();
    }
    let attach = started.elapsed() / COUNT;
    let started = Instant::now();
    for i in 0..COUNT {
        manager.detach(&format!("vmtest-t{i}")).unwrap();
    }
    let detach = started.elapsed() / COUNT;
    eprintln!("mean attach {attach:?}, mean detach {detach:?} over {COUNT} containers");
    // Generous bound: this only catches pathological slowness (e.g. spawning
    // processes per container), not noise on a loaded 2-core machine.
    assert!(attach.as_millis() < 250, "attach {attach:?}");
    assert!(detach.as_millis() < 250, "detach {detach:?}");
    manager.remove("vmtest-net-t").unwrap();
}
