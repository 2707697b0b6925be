//! A container on two networks: connect adds `eth1` in its namespace, both networks'
//! peers resolve it through their hosts files, disconnect takes it away again, and the
//! first network can be disconnected and connected back while the namespace lives.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::{require_root, TestEnv};
use vmrun_network::{CreateOptions, NetworkError};

fn subnet(s: &str) -> CreateOptions {
    CreateOptions {
        subnet: Some(s.parse().unwrap()),
        ..Default::default()
    }
}

#[test]
fn a_container_on_two_networks() {
    require_root!();
    let env = TestEnv::new("k", "10.247.0.0/24");
    let manager = env.manager();
    manager
        .create("vmtest-front", subnet("10.247.1.0/24"))
        .unwrap();
    manager
        .create("vmtest-back", subnet("10.247.2.0/24"))
        .unwrap();
    let web = manager
        .attach(env.request("vmtest-web", "vmtest-front"))
        .unwrap();
    manager
        .attach(env.request("vmtest-db", "vmtest-back"))
        .unwrap();
    manager
        .attach(env.request("vmtest-cli", "vmtest-front"))
        .unwrap();

    // web joins back as well, under one more alias.
    let mut req = env.request("vmtest-web", "vmtest-back");
    req.aliases = vec!["api".into()];
    let second = manager.connect(req.clone()).unwrap();
    assert_eq!(second.ip, Some(Ipv4Addr::new(10, 247, 2, 3)));
    assert_eq!(second.netns_path, web.netns_path);
    assert!(matches!(
        manager.connect(req),
        Err(NetworkError::AlreadyConnected { .. })
    ));
    assert!(matches!(
        manager.connect(env.request("vmtest-nobody", "vmtest-back")),
        Err(NetworkError::NoNamespace(_))
    ));
    assert_eq!(manager.endpoints("vmtest-web").len(), 2);
    assert_eq!(manager.inspect("vmtest-back").unwrap().containers.len(), 2);

    let read = |c: &str| std::fs::read_to_string(env.hosts_file(c)).unwrap();
    let web_hosts = read("vmtest-web");
    assert!(
        web_hosts.contains("10.247.1.2\tvmtest-web-host"),
        "{web_hosts}"
    );
    assert!(
        web_hosts.contains("10.247.2.3\tvmtest-web-host vmtest-web-name api"),
        "{web_hosts}"
    );
    assert!(
        web_hosts.contains("vmtest-db-alias"),
        "web sees db: {web_hosts}"
    );
    assert!(
        web_hosts.contains("vmtest-cli-alias"),
        "web sees cli: {web_hosts}"
    );
    let db_hosts = read("vmtest-db");
    assert!(
        db_hosts.contains("10.247.2.3\tvmtest-web-host vmtest-web-name api"),
        "{db_hosts}"
    );
    assert!(
        !db_hosts.contains("10.247.1.2"),
        "db must not see web's front address: {db_hosts}"
    );
    assert!(
        !read("vmtest-cli").contains("vmtest-db"),
        "cli and db share no network"
    );

    if common::have("nsenter") && common::have("ip") {
        let ns = web.netns_path.clone().unwrap();
        let (ok, addr) = common::in_netns(&ns, &["ip", "-o", "addr", "show", "eth1"]);
        assert!(ok && addr.contains("inet 10.247.2.3/24"), "{addr}");
        let (_, route) = common::in_netns(&ns, &["ip", "route", "show", "default"]);
        assert!(route.contains("via 10.247.1.1 dev eth0"), "{route}");
    }
    // db reaches web over the second network.
    let db_ns = manager.endpoint("vmtest-db").unwrap().netns_path.unwrap();
    let server = SocketAddr::new(Ipv4Addr::new(10, 247, 2, 3).into(), 7003);
    common::tcp_echo_in(web.netns_path.as_ref().unwrap(), server);
    assert_eq!(
        common::tcp_round_trip_from(&db_ns, server, b"over back"),
        b"over back"
    );

    manager.disconnect("vmtest-web", "vmtest-back").unwrap();
    assert!(
        !read("vmtest-db").contains("vmtest-web"),
        "{}",
        read("vmtest-db")
    );
    assert!(!read("vmtest-web").contains("vmtest-db"));
    assert!(matches!(
        manager.disconnect("vmtest-web", "vmtest-back"),
        Err(NetworkError::NotConnected { .. })
    ));
    assert!(matches!(
        manager.disconnect("vmtest-web", "no-such-net"),
        Err(NetworkError::NotFound(_))
    ));

    // The first network away and back: the namespace stays, eth0 comes back with a route.
    manager.disconnect("vmtest-web", "vmtest-front").unwrap();
    assert!(!read("vmtest-cli").contains("vmtest-web"));
    let back = manager
        .connect(env.request("vmtest-web", "vmtest-front"))
        .unwrap();
    assert_eq!(back.netns_path, web.netns_path);
    assert!(read("vmtest-cli").contains("vmtest-web-alias"));
    if common::have("nsenter") && common::have("ip") {
        let (_, route) = common::in_netns(
            web.netns_path.as_ref().unwrap(),
            &["ip", "route", "show", "default"],
        );
        assert!(route.contains("dev eth0"), "{route}");
    }

    manager.detach("vmtest-web").unwrap();
    assert!(manager.endpoints("vmtest-web").is_empty());
    assert!(!read("vmtest-cli").contains("vmtest-web"));
}
