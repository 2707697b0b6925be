//! The CRI path of the containerd shim v2: a private containerd 1.6 with its CRI plugin
//! and a runtime handler `vmrun` (`runtime_type = "io.containerd.vmrun.v2"`), driven by
//! a CRI client as the kubelet drives it for a pod whose RuntimeClass names the handler
//! (`vmrun_e2e::cri`): RunPodSandbox, CreateContainer/StartContainer, the CRI log file,
//! ContainerStatus, ExecSync, StopPodSandbox/RemovePodSandbox. The pod's containers run
//! in one microVM (QEMU TCG on this host), booted from the kernel and agent initramfs
//! the test hands containerd (`VMRUN_VM_KERNEL`/`VMRUN_VM_INITRD`, inherited by the
//! shims).
//!
//! Needs root, `containerd`, Debian's CNI plugins, a VM monitor, the kernel-config kernel
//! and the static agent. Run: `cargo build -p vmrun-containerd-shim && cargo test -p
//! vmrun-e2e --test containerd_cri`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use vmrun_e2e::cri::proto::{container_state, pod_sandbox_state};
use vmrun_e2e::cri::{read_cri_log, CriNode, LogDir, HANDLER};
use vmrun_e2e::oci::{host_boot_id, shim_guest_assets};
use vmrun_e2e::wait_for;

/// Deadline of a CRI call that boots a VM or shares files into it (TCG, loaded host).
const VM_CALL: Duration = Duration::from_secs(240);

/// A CRI node whose shims boot the test's kernel and initramfs, or `None` after saying
/// why not.
fn node() -> Option<CriNode> {
    let (kernel, initrd) = shim_guest_assets()?;
    if let Some(why) = CriNode::unavailable() {
        vmrun_test_skip::report(why);
        return None;
    }
    let node = CriNode::start(&[("VMRUN_VM_KERNEL", &kernel), ("VMRUN_VM_INITRD", &initrd)]);
    Some(node.unwrap_or_else(|e| panic!("starting the CRI node: {e}")))
}

/// This node's shims.
fn shims(node: &CriNode) -> BTreeSet<i32> {
    let dir = node.containerd.dir().display().to_string();
    vmrun_e2e::cleanup::pids_mentioning("containerd-shim-vmrun-v2")
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.contains("containerd-shim-vmrun-v2") && c.contains(&dir))
        })
        .collect()
}

/// `pids` and all their descendants (the shims' VM monitors and vsock helpers).
fn with_descendants(mut pids: BTreeSet<i32>) -> BTreeSet<i32> {
    loop {
        let children: Vec<i32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| !pids.contains(p) && pids.contains(&parent_of(*p)))
            .collect();
        if children.is_empty() {
            return pids;
        }
        pids.extend(children);
    }
}

fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z ")
}

/// Mount points whose path names `id`.
fn mounts_naming(id: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.contains(id))
        .map(str::to_owned)
        .collect()
}

/// Waits until container `id` has exited: its status.
fn wait_exited(node: &CriNode, id: &str) -> vmrun_e2e::cri::proto::ContainerStatus {
    wait_for(VM_CALL, "the container to exit", || {
        let status = node.client.container_status(id).expect("ContainerStatus");
        (status.state == container_state::EXITED).then_some(status)
    })
}

#[test]
fn a_pod_with_the_vmrun_handler_runs_in_one_microvm() {
    let Some(node) = node() else {
        return;
    };
    let logs = LogDir::new().expect("a log directory");
    let pod_config = node.pod_config("pod1", &logs.0);
    let started = Instant::now();
    let pod = match node.client.run_pod_sandbox(&pod_config, HANDLER, VM_CALL) {
        Err(e) if e.contains("no VM monitor on this host") => {
            vmrun_test_skip::report(e);
            return;
        }
        r => r.unwrap_or_else(|e| panic!("{e}\n{}", node.containerd.log_tail())),
    };
    eprintln!("RunPodSandbox (VM boot): {:?}", started.elapsed());
    let status = node
        .client
        .pod_sandbox_status(&pod)
        .expect("PodSandboxStatus");
    assert_eq!(status.state, pod_sandbox_state::READY);
    assert_eq!(status.runtime_handler, HANDLER);
    let pod_ip = status.network.map(|n| n.ip).unwrap_or_default();
    assert!(
        pod_ip.starts_with(&format!("{}.", node.subnet_prefix)),
        "the pod's IP {pod_ip:?} is not from the node's CNI subnet"
    );
    assert_eq!(shims(&node).len(), 1, "one shim for the pod");

    // A container that prints and exits: its output through containerd's CRI log.
    let first = node.container_config(
        "first",
        &[
            "sh",
            "-c",
            "cat /proc/sys/kernel/random/boot_id; cat /etc/hostname; \
             grep -c 192.0.2.53 /etc/resolv.conf; echo to stderr >&2; exit 3",
        ],
    );
    let started = Instant::now();
    let first = node
        .client
        .create_container(&pod, &first, &pod_config, VM_CALL)
        .unwrap_or_else(|e| panic!("{e}\n{}", node.containerd.log_tail()));
    node.client
        .start_container(&first, VM_CALL)
        .unwrap_or_else(|e| panic!("{e}\n{}", node.containerd.log_tail()));
    let exited = wait_exited(&node, &first);
    eprintln!("first container, create to exit: {:?}", started.elapsed());
    assert_eq!(exited.exit_code, 3, "{exited:?}");
    let log = read_cri_log(&logs.0.join("first.log")).expect("the CRI log");
    let out: Vec<&str> = log
        .iter()
        .filter(|(s, _)| s == "stdout")
        .map(|(_, m)| m.as_str())
        .collect();
    let err: Vec<&str> = log
        .iter()
        .filter(|(s, _)| s == "stderr")
        .map(|(_, m)| m.as_str())
        .collect();
    assert_eq!(out.len(), 3, "{log:?}");
    let boot_id = out[0].to_string();
    assert_eq!(boot_id.len(), 36, "not a boot id: {log:?}");
    assert_ne!(boot_id, host_boot_id(), "the container ran on the host");
    assert_eq!(out[1], "pod1", "the pod's /etc/hostname: {log:?}");
    assert_eq!(out[2], "1", "the pod's /etc/resolv.conf: {log:?}");
    assert_eq!(err, ["to stderr"]);

    // A second container of the pod: the same VM; ExecSync in it.
    let second = node.container_config("second", &["sleep", "1000"]);
    let second = node
        .client
        .create_container(&pod, &second, &pod_config, VM_CALL)
        .expect("CreateContainer");
    node.client
        .start_container(&second, VM_CALL)
        .expect("StartContainer");
    let status = node.client.container_status(&second).expect("status");
    assert_eq!(status.state, container_state::RUNNING, "{status:?}");
    let started = Instant::now();
    let exec = node
        .client
        .exec_sync(
            &second,
            &["sh", "-c", "cat /proc/sys/kernel/random/boot_id; exit 4"],
            120,
        )
        .expect("ExecSync");
    eprintln!("ExecSync: {:?}", started.elapsed());
    assert_eq!(exec.exit_code, 4);
    assert_eq!(
        String::from_utf8_lossy(&exec.stdout).trim(),
        boot_id,
        "two VMs for one pod"
    );
    assert_eq!(shims(&node).len(), 1, "one shim per pod");
    let processes = with_descendants(shims(&node));
    assert!(processes.len() > 1, "the shim runs no VM monitor");

    // The pod's containers share its hostname, its /dev/shm (the tmpfs containerd made
    // for the sandbox on the host) and its loopback: a listener in the second container
    // answers a third one on 127.0.0.1.
    let exec = node
        .client
        .exec_sync(
            &second,
            &[
                "sh",
                "-c",
                "hostname; echo shm > /dev/shm/from-second; \
                 (echo pod-local | nc -l -p 7777 >/dev/null 2>&1 &); sleep 1",
            ],
            120,
        )
        .expect("ExecSync");
    assert_eq!(exec.exit_code, 0, "{exec:?}");
    assert_eq!(String::from_utf8_lossy(&exec.stdout).trim(), "pod1");
    let host_shm = node
        .containerd
        .dir()
        .join("state/io.containerd.grpc.v1.cri/sandboxes")
        .join(&pod)
        .join("shm/from-second");
    assert_eq!(
        std::fs::read_to_string(&host_shm).unwrap_or_default(),
        "shm\n",
        "the pod's /dev/shm is not the sandbox's ({})",
        host_shm.display()
    );
    let third = node.container_config("third", &["nc", "127.0.0.1", "7777"]);
    let third = node
        .client
        .create_container(&pod, &third, &pod_config, VM_CALL)
        .expect("CreateContainer");
    node.client
        .start_container(&third, VM_CALL)
        .expect("StartContainer");
    let exited = wait_exited(&node, &third);
    let log = read_cri_log(&logs.0.join("third.log")).expect("the CRI log");
    assert_eq!(
        log,
        [("stdout".to_string(), "pod-local".to_string())],
        "{exited:?}"
    );

    // Stop and remove the pod: no shim, VM or mount is left.
    let started = Instant::now();
    node.client
        .stop_pod_sandbox(&pod, true, VM_CALL)
        .expect("StopPodSandbox, RemovePodSandbox");
    eprintln!("StopPodSandbox + RemovePodSandbox: {:?}", started.elapsed());
    wait_for(
        Duration::from_secs(60),
        "the shim and its VM to end",
        || processes.iter().all(|p| !alive(*p)).then_some(()),
    );
    for id in [&pod, &first, &second, &third] {
        assert_eq!(
            mounts_naming(id),
            Vec::<String>::new(),
            "mounts left of {id}"
        );
    }
    assert!(
        node.client.container_status(&first).is_err(),
        "the removed pod's containers are still known"
    );
}

/// The pod's IP, which CRI reports (from CNI, on the node's bridge).
fn pod_ip(node: &CriNode, pod: &str) -> std::net::Ipv4Addr {
    let status = node
        .client
        .pod_sandbox_status(pod)
        .expect("PodSandboxStatus");
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    ip.parse()
        .unwrap_or_else(|_| panic!("the pod's IP {ip:?} is not an IPv4 address"))
}

#[test]
fn a_pods_traffic_leaves_from_and_reaches_its_cni_address() {
    use std::io::Read;
    let Some(node) = node() else {
        return;
    };
    let logs = LogDir::new().expect("a log directory");
    let pod_config = node.pod_config("netpod", &logs.0);
    let pod = match node.client.run_pod_sandbox(&pod_config, HANDLER, VM_CALL) {
        Err(e) if e.contains("no VM monitor on this host") => {
            vmrun_test_skip::report(e);
            return;
        }
        r => r.unwrap_or_else(|e| panic!("{e}\n{}", node.containerd.log_tail())),
    };
    let ip = pod_ip(&node, &pod);
    let gateway: std::net::Ipv4Addr = format!("{}.1", node.subnet_prefix)
        .parse()
        .expect("the bridge's address");

    // Out: a connection from the pod reaches the host's listener on the bridge from the
    // pod's own address, which is also the address of the guest's eth0 (as under Kata),
    // with CNI's gateway as its default route.
    let listener = std::net::TcpListener::bind((gateway, 0)).expect("listening on the bridge");
    let port = listener.local_addr().expect("address").port();
    let client = node.container_config(
        "client",
        &[
            "sh",
            "-c",
            &format!(
                "{{ echo from-pod; ip -4 -o addr show eth0; ip route show default; }} \
                 | nc {gateway} {port}"
            ),
        ],
    );
    let client = node
        .client
        .create_container(&pod, &client, &pod_config, VM_CALL)
        .unwrap_or_else(|e| panic!("{e}\n{}", node.containerd.log_tail()));
    node.client
        .start_container(&client, VM_CALL)
        .expect("StartContainer");
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (conn, peer) = loop {
        if let Ok(accepted) = listener.accept() {
            break accepted;
        }
        assert!(
            Instant::now() < deadline,
            "no connection from the pod; the client's log: {:?}, its status: {:?}\n{}",
            std::fs::read_to_string(logs.0.join("client.log")),
            node.client.container_status(&client),
            node.containerd.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    conn.set_nonblocking(false).expect("blocking");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut said = String::new();
    (&conn)
        .read_to_string(&mut said)
        .expect("reading from the pod");
    assert!(said.starts_with("from-pod\n"), "{said}");
    assert!(
        said.contains(&format!("inet {ip}/24 "))
            && said.contains(&format!("default via {gateway} ")),
        "the pod's eth0 address and default route are not its CNI ones: {said}"
    );
    assert_eq!(peer.ip(), ip, "the pod's traffic left from another address");
    drop(conn);
    wait_exited(&node, &client);

    // In: a server in the pod is reached at the pod IP from the node, once it listens.
    let server = node.container_config(
        "server",
        &[
            "sh",
            "-c",
            "while true; do echo from-pod-server | nc -l -p 8080; done",
        ],
    );
    let server = node
        .client
        .create_container(&pod, &server, &pod_config, VM_CALL)
        .unwrap_or_else(|e| panic!("{e}\n{}", node.containerd.log_tail()));
    node.client
        .start_container(&server, VM_CALL)
        .expect("StartContainer");
    let started = Instant::now();
    let answer = wait_for(
        Duration::from_secs(60),
        "the pod's server at its IP",
        || {
            let mut conn =
                std::net::TcpStream::connect_timeout(&(ip, 8080).into(), Duration::from_secs(5))
                    .ok()?;
            conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            let mut got = String::new();
            conn.read_to_string(&mut got).ok()?;
            (!got.is_empty()).then_some(got)
        },
    );
    eprintln!(
        "the pod's server answered at its IP after {:?}",
        started.elapsed()
    );
    assert_eq!(answer.trim(), "from-pod-server");

    node.client
        .stop_pod_sandbox(&pod, true, VM_CALL)
        .expect("StopPodSandbox, RemovePodSandbox");
}
