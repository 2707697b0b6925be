//! State survives a restart: networks and allocations are reloaded, and
//! reconciliation repairs or drops what the host lost.

mod common;

use std::net::Ipv4Addr;

use common::{require_root, TestEnv};
use vmrun_network::{netns, CreateOptions};

#[test]
fn reopen_finds_networks_and_allocations() {
    require_root!();
    let mut env = TestEnv::new("r", "10.251.5.0/24");
    let network = env
        .manager()
        .create(
            "vmtest-net-r",
            CreateOptions {
                subnet: Some("10.251.6.0/24".parse().unwrap()),
                internal: true,
                ..Default::default()
            },
        )
        .unwrap();
    let one = env
        .manager()
        .attach(env.request("vmtest-r1", "vmtest-net-r"))
        .unwrap();
    let two = env
        .manager()
        .attach(env.request("vmtest-r2", "vmtest-net-r"))
        .unwrap();
    let three = env
        .manager()
        .attach(env.request("vmtest-r3", "bridge"))
        .unwrap();
    assert_eq!(one.gateway, Some(Ipv4Addr::new(10, 251, 6, 1)));
    let networks_before = env.manager().list();
    let one_server = std::net::SocketAddr::new(one.ip.unwrap().into(), 7005);
    common::tcp_echo_in(one.netns_path.as_ref().unwrap(), one_server);

    env.reopen();
    assert_eq!(env.manager().list(), networks_before);
    assert_eq!(env.manager().endpoint("vmtest-r1"), Some(one.clone()));
    assert_eq!(env.manager().endpoint("vmtest-r2"), Some(two.clone()));
    assert_eq!(env.manager().endpoint("vmtest-r3"), Some(three.clone()));
    assert_eq!(
        env.manager().inspect(&network.id).unwrap().name,
        "vmtest-net-r"
    );
    // A new endpoint does not reuse an allocated address.
    let four = env
        .manager()
        .attach(env.request("vmtest-r4", "vmtest-net-r"))
        .unwrap();
    assert_eq!(four.ip, Some(Ipv4Addr::new(10, 251, 6, 4)));

    // The host loses the bridge and one namespace while the daemon is down.
    let bridge = network.bridge.clone().unwrap();
    let lost = two.netns_path.clone().unwrap();
    let veths: Vec<String> = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(veths.len(), 3);
    env.manager = None;
    // All host veths go too (their peers with them), so reopening must
    // re-create the pairs inside the surviving namespaces.
    for veth in &veths {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", veth])
            .status();
    }
    assert!(std::process::Command::new("ip")
        .args(["link", "del", &bridge])
        .status()
        .unwrap()
        .success());
    nix::mount::umount2(&lost, nix::mount::MntFlags::MNT_DETACH).unwrap();
    std::fs::remove_file(&lost).unwrap();
    assert!(!common::host_link_exists(&bridge));

    env.reopen();
    assert!(common::host_link_exists(&bridge), "bridge re-created");
    assert_eq!(
        env.manager().endpoint("vmtest-r2"),
        None,
        "endpoint without namespace dropped"
    );
    assert_eq!(env.manager().endpoint("vmtest-r1"), Some(one.clone()));
    assert!(netns::is_netns(one.netns_path.as_ref().unwrap()));
    // r1 and r4 have new veths on the re-created bridge: r4 reaches r1 again.
    assert_eq!(
        common::tcp_round_trip_from(four.netns_path.as_ref().unwrap(), one_server, b"again"),
        b"again"
    );
    let ports = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .unwrap()
        .count();
    assert_eq!(ports, 2, "r1 and r4 on the bridge");
    let hosts1 = std::fs::read_to_string(env.hosts_file("vmtest-r1")).unwrap();
    assert!(!hosts1.contains("vmtest-r2"), "{hosts1}");
    assert!(hosts1.contains("vmtest-r4-name"), "{hosts1}");
    // Internal network: no default route inside.
    if common::have("nsenter") && common::have("ip") {
        let (_, route) = common::in_netns(
            one.netns_path.as_ref().unwrap(),
            &["ip", "route", "show", "default"],
        );
        assert!(route.trim().is_empty(), "{route}");
    }
    // The released address of r2 is free again (after the cursor wraps).
    let info = env.manager().inspect("vmtest-net-r").unwrap();
    let ips: Vec<_> = info.containers.iter().filter_map(|(_, e)| e.ip).collect();
    assert!(!ips.contains(&Ipv4Addr::new(10, 251, 6, 3)), "{ips:?}");
    // teardown (on drop) detaches the endpoints whose veths died with the bridge.
}
