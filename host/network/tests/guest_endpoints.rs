//! Endpoints of containers in VMs: addresses from the same IPAM as native containers,
//! nothing made on the host, hosts files listing only peers of the same VM, every rewrite
//! handed to the hosts sink, and disconnect/detach releasing them; after a restart the
//! VM's endpoints are gone (the VM ended with the daemon).

mod common;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use common::{host_link_exists, require_root, TestEnv};
use vmrun_network::{CreateOptions, NetworkError};

#[test]
fn guest_endpoints_share_ipam_but_list_only_their_vm() {
    require_root!();
    let mut env = TestEnv::new("g", "10.246.0.0/24");
    let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let sink = seen.clone();
    env.manager()
        .set_hosts_sink(Arc::new(move |id, domain, text| {
            sink.lock()
                .unwrap()
                .push((id.into(), domain.into(), text.into()));
        }));
    let options = CreateOptions {
        subnet: Some("10.246.1.0/24".parse().unwrap()),
        ..Default::default()
    };
    let network = env.manager().create("vmtest-gnet", options).unwrap();
    let manager = env.manager();

    // A native container and two in one VM, one in another VM.
    manager
        .attach(env.request("vmtest-native", "vmtest-gnet"))
        .unwrap();
    let a = manager
        .connect_guest(env.request("vmtest-a", "vmtest-gnet"), "vm-1")
        .unwrap();
    let b = manager
        .connect_guest(env.request("vmtest-b", "vmtest-gnet"), "vm-1")
        .unwrap();
    manager
        .connect_guest(env.request("vmtest-c", "vmtest-gnet"), "vm-2")
        .unwrap();
    assert_eq!(a.endpoint.ip, Some(Ipv4Addr::new(10, 246, 1, 3)));
    assert_eq!(b.endpoint.ip, Some(Ipv4Addr::new(10, 246, 1, 4)));
    assert_eq!(a.interface, "eth1");
    assert_eq!(Some(a.bridge.as_str()), network.bridge.as_deref());
    assert_eq!(a.endpoint.netns_path, None);
    assert!(a.host_veth.len() <= 15 && a.host_veth != b.host_veth);
    assert!(!host_link_exists(&a.host_veth), "a guest veth on the host");
    assert!(matches!(
        manager.connect_guest(env.request("vmtest-a", "vmtest-gnet"), "vm-1"),
        Err(NetworkError::AlreadyConnected { .. })
    ));
    assert_eq!(manager.inspect("vmtest-gnet").unwrap().containers.len(), 4);

    let a_hosts = manager.hosts_text("vmtest-a").unwrap();
    assert!(a_hosts.contains("10.246.1.3\tvmtest-a-host vmtest-a-name vmtest-a-alias"));
    assert!(a_hosts.contains("10.246.1.4\tvmtest-b-host"), "{a_hosts}");
    assert!(
        !a_hosts.contains("vmtest-c-host"),
        "another VM listed: {a_hosts}"
    );
    assert!(
        !a_hosts.contains("vmtest-native"),
        "a native peer listed: {a_hosts}"
    );
    let native = std::fs::read_to_string(env.hosts_file("vmtest-native")).unwrap();
    assert!(!native.contains("vmtest-a-host"), "{native}");
    // b's arrival rewrote a's file, and the sink heard of it.
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|(id, domain, text)| id == "vmtest-a"
            && domain == "vm-1"
            && text.contains("vmtest-b-host")));

    // A second network: eth2, listed on both.
    let options = CreateOptions {
        subnet: Some("10.246.2.0/24".parse().unwrap()),
        ..Default::default()
    };
    manager.create("vmtest-gnet2", options).unwrap();
    let second = manager
        .connect_guest(env.request("vmtest-a", "vmtest-gnet2"), "vm-1")
        .unwrap();
    assert_eq!(second.interface, "eth2");
    assert_eq!(
        manager
            .disconnect_guest("vmtest-a", "vmtest-gnet2")
            .unwrap(),
        Some(second.host_veth.clone())
    );
    assert!(!manager
        .hosts_text("vmtest-a")
        .unwrap()
        .contains("10.246.2."));

    assert_eq!(manager.hosts_text("vmtest-nobody"), None);

    // b goes: a's file loses it, through the sink too.
    seen.lock().unwrap().clear();
    manager.detach("vmtest-b").unwrap();
    assert!(!manager
        .hosts_text("vmtest-a")
        .unwrap()
        .contains("vmtest-b-host"));
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|(id, _, text)| id == "vmtest-a" && !text.contains("vmtest-b-host")));

    // A restart forgets the VM's endpoints, keeps the native one.
    env.reopen();
    let containers = env.manager().inspect("vmtest-gnet").unwrap().containers;
    let ids: Vec<&str> = containers.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["vmtest-native"]);
    env.manager().detach("vmtest-native").unwrap();
    env.manager().remove("vmtest-gnet").unwrap();
    env.manager().remove("vmtest-gnet2").unwrap();
}
