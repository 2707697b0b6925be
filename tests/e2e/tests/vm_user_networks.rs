//! Containers in the shared VM on user networks, with the real docker CLI: they reach each
//! other by container name and by `--network-alias` (HTTP and ping) on the network's
//! bridge in the guest, their hosts files follow peers that start, connect, disconnect
//! and stop, a container on another network neither resolves nor reaches them, `network
//! connect`/`disconnect` of a running container adds and removes its interface, and
//! inspect shows the addresses the containers really have.
//!
//! A container in a VM of its own gets its address on its user network the same way.
//!
//! Needs root, the docker CLI, a VM backend, the guest kernel, the agent initramfs and
//! `passt`; skips, saying which, without them.

use vmrun_e2e::vm::{docker, isolation_daemon, shared_vm_daemon};
use vmrun_e2e::Daemon;

/// What the web server serves.
const PAGE: &str = "hello from web";

/// `docker exec NAME sh -c script`, its output (whatever its status).
fn exec_sh(d: &Daemon, name: &str, script: &str) -> vmrun_e2e::CmdOutput {
    docker(d, &["exec", name, "sh", "-c", script])
}

/// Container `name`'s address on `network`, as inspect shows it.
fn inspect_ip(d: &Daemon, name: &str, network: &str) -> String {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    let out = docker(d, &["inspect", "-f", &format, name]);
    out.ok();
    out.stdout.trim().to_string()
}

/// The container's IPv4 addresses, as `ip -4 addr` in it lists them.
fn addresses_in(d: &Daemon, name: &str) -> String {
    let out = exec_sh(d, name, "ip -4 addr");
    out.ok();
    out.stdout
}

/// Container `name`'s `/etc/hosts` once `ready` holds for it (updates reach the VM a
/// moment after the command that caused them returns), or its last text.
fn hosts_when(d: &Daemon, name: &str, ready: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..40 {
        text = exec_sh(d, name, "cat /etc/hosts").stdout;
        if ready(&text) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    text
}

/// A fetch of `http://host/` from `name`, retried while the server comes up. (`timeout`,
/// not `wget -T`: the test image's busybox wget crashes with `-T`.)
fn fetch(d: &Daemon, name: &str, host: &str) -> vmrun_e2e::CmdOutput {
    exec_sh(
        d,
        name,
        &format!(
            "for i in $(seq 1 40); do timeout 3 wget -q -O- http://{host}/ && exit 0; sleep 0.25; done; exit 1"
        ),
    )
}

#[test]
fn shared_vm_containers_reach_each_other_by_name_on_user_networks() {
    let Some(d) = shared_vm_daemon() else {
        return;
    };
    let started = std::time::Instant::now();
    docker(&d, &["network", "create", "foo"]).ok();
    docker(&d, &["network", "create", "bar"]).ok();

    // The client first: its hosts file must learn about the server when that starts.
    let client = ["run", "-d", "--name", "client", "--network", "foo"];
    docker(&d, &[&client[..], &["busybox", "sleep", "600"]].concat()).ok();
    let server =
        format!("mkdir -p /www && echo '{PAGE}' > /www/index.html && exec httpd -f -p 80 -h /www");
    docker(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "foo",
            "--network-alias",
            "webalias",
            "busybox",
            "sh",
            "-c",
            &server,
        ],
    )
    .ok();
    docker(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "other",
            "--network",
            "bar",
            "busybox",
            "sleep",
            "600",
        ],
    )
    .ok();

    // Inspect shows the addresses the containers have (eth1 on the guest's bridge).
    let web_ip = inspect_ip(&d, "web", "foo");
    let client_ip = inspect_ip(&d, "client", "foo");
    assert!(
        !web_ip.is_empty() && web_ip != client_ip,
        "web {web_ip:?}, client {client_ip:?}"
    );
    assert!(
        addresses_in(&d, "web").contains(&format!("inet {web_ip}/")),
        "web lacks {web_ip}"
    );
    assert!(
        addresses_in(&d, "client").contains(&format!("inet {client_ip}/")),
        "client lacks {client_ip}"
    );

    // By name and by alias, HTTP and ping, through a hosts file updated when web started.
    let web_line = |h: &str| {
        h.lines()
            .any(|l| l.starts_with(&format!("{web_ip}\t")) && l.contains("webalias"))
    };
    let hosts = hosts_when(&d, "client", web_line);
    assert!(
        web_line(&hosts),
        "the client's hosts file lacks web: {hosts}"
    );
    for name in ["web", "webalias"] {
        let got = fetch(&d, "client", name);
        got.ok();
        assert_eq!(got.stdout.trim(), PAGE, "fetching http://{name}/");
    }
    exec_sh(&d, "client", "ping -c 1 -W 5 web").ok();

    // Another network: no name, no way there.
    let out = exec_sh(
        &d,
        "other",
        &format!("grep -w web /etc/hosts; timeout 3 wget -q -O- http://{web_ip}/ && echo REACHED"),
    );
    assert!(
        !out.stdout.contains("REACHED"),
        "bar reached foo's web: {}",
        out.stdout
    );
    assert!(
        !out.stdout.contains(&web_ip),
        "bar resolves web: {}",
        out.stdout
    );

    // Connected while running: reachable by name both ways, its address shown and real.
    docker(
        &d,
        &[
            "network",
            "connect",
            "--alias",
            "otheralias",
            "foo",
            "other",
        ],
    )
    .ok();
    let other_ip = inspect_ip(&d, "other", "foo");
    assert!(!other_ip.is_empty(), "no address for other on foo");
    assert!(addresses_in(&d, "other").contains(&format!("inet {other_ip}/")));
    let got = fetch(&d, "other", "web");
    got.ok();
    assert_eq!(got.stdout.trim(), PAGE);
    let hosts = hosts_when(&d, "web", |h| h.contains("otheralias"));
    assert!(
        hosts.contains(&format!("{other_ip}\t")),
        "web's hosts file: {hosts}"
    );
    exec_sh(&d, "web", "ping -c 1 -W 5 otheralias").ok();

    // Disconnected: gone from the peers' files, its interface gone, web out of reach.
    docker(&d, &["network", "disconnect", "foo", "other"]).ok();
    let web_hosts = hosts_when(&d, "web", |h| !h.contains("otheralias"));
    assert!(
        !web_hosts.contains("otheralias"),
        "web still lists other: {web_hosts}"
    );
    assert!(!addresses_in(&d, "other").contains(&format!("inet {other_ip}/")));
    let out = exec_sh(
        &d,
        "other",
        &format!("grep -w web /etc/hosts; timeout 3 wget -q -O- http://{web_ip}/ && echo REACHED"),
    );
    assert!(
        !out.stdout.contains("REACHED"),
        "reached web after disconnect: {}",
        out.stdout
    );

    // Connected while stopped: joined at its start.
    docker(
        &d,
        &[
            "create",
            "--name",
            "late",
            "--network",
            "bar",
            "busybox",
            "sleep",
            "600",
        ],
    )
    .ok();
    docker(
        &d,
        &["network", "connect", "--alias", "latealias", "foo", "late"],
    )
    .ok();
    docker(&d, &["start", "late"]).ok();
    let late_ip = inspect_ip(&d, "late", "foo");
    assert!(addresses_in(&d, "late").contains(&format!("inet {late_ip}/")));
    let got = fetch(&d, "late", "webalias");
    got.ok();
    assert_eq!(got.stdout.trim(), PAGE);

    // A peer that stops leaves the others' files.
    docker(&d, &["rm", "-f", "web"]).ok();
    let hosts = hosts_when(&d, "client", |h| !h.contains("webalias"));
    assert!(
        !hosts.contains("webalias"),
        "the client still lists web: {hosts}"
    );

    docker(&d, &["rm", "-f", "client", "other", "late"]).ok();
    docker(&d, &["network", "rm", "foo", "bar"]).ok();
    eprintln!("user networks in the shared VM: {:?}", started.elapsed());
}

/// A container in a VM of its own gets its address on a user network too (alone on the
/// VM's bridge): inspect's address is the one it has.
#[test]
fn own_vm_container_has_its_user_network_address() {
    let Some(d) = isolation_daemon() else {
        return;
    };
    docker(&d, &["network", "create", "solo-net"]).ok();
    let run = [
        "run",
        "-d",
        "--isolation",
        "vm",
        "--name",
        "solo",
        "--network",
        "solo-net",
    ];
    docker(&d, &[&run[..], &["busybox", "sleep", "600"]].concat()).ok();
    let ip = inspect_ip(&d, "solo", "solo-net");
    assert!(!ip.is_empty(), "no address on solo-net");
    assert!(addresses_in(&d, "solo").contains(&format!("inet {ip}/")));
    let hosts = exec_sh(&d, "solo", "cat /etc/hosts").stdout;
    assert!(hosts.contains(&format!("{ip}\t")), "{hosts}");
    docker(&d, &["rm", "-f", "solo"]).ok();
    docker(&d, &["network", "rm", "solo-net"]).ok();
}
