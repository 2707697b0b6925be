//! `network connect`/`disconnect`: a container on two networks reaches, by name and
//! alias, the containers of both, also after a daemon restart; names follow connects and
//! disconnects; a stopped
//! container's connections are kept for its next start; docker's refusals.

use std::time::Duration;

use vmrun_e2e::{require_root, wait_for, Daemon};

/// Whether `from` resolves and pings `to` (one try).
fn reaches(d: &Daemon, from: &str, to: &str) -> bool {
    d.vmrun(&["exec", from, "ping", "-c1", "-W2", to]).success()
}

fn run_on(d: &Daemon, name: &str, network: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "--network", network];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sleep", "600"]);
    d.vmrun(&args).ok();
}

#[test]
fn a_container_on_two_networks_reaches_both_by_name_and_alias() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start();
    d.vmrun(&["network", "create", "front"]).ok();
    d.vmrun(&["network", "create", "back"]).ok();
    run_on(&d, "web", "front", &[]);
    run_on(&d, "db", "back", &["--network-alias", "database"]);
    run_on(&d, "cli", "front", &[]);
    assert!(!reaches(&d, "web", "db"), "web and db share no network yet");

    d.vmrun(&["network", "connect", "--alias", "api", "back", "web"])
        .ok();
    assert!(reaches(&d, "web", "db"), "web → db by container name");
    assert!(reaches(&d, "web", "database"), "web → db by alias");
    assert!(
        reaches(&d, "web", "cli"),
        "web still reaches its first network"
    );
    assert!(reaches(&d, "db", "api"), "db → web by its alias on back");
    assert!(reaches(&d, "db", "web"), "db → web by name");
    assert!(!reaches(&d, "cli", "db"), "cli is not on back");

    let inspect = d.inspect("web");
    let nets = &inspect["NetworkSettings"]["Networks"];
    assert!(
        nets["front"]["IPAddress"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty()),
        "{nets}"
    );
    assert!(
        nets["back"]["IPAddress"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty()),
        "{nets}"
    );
    let aliases = nets["back"]["Aliases"].to_string();
    assert!(aliases.contains("\"api\""), "{aliases}");
    let back = d.api("GET", "/networks/back", None).json();
    let id = inspect["Id"].as_str().unwrap();
    assert!(back["Containers"].get(id).is_some(), "{back}");
    let addrs = d.vmrun(&["exec", "web", "ip", "-o", "-4", "addr"]);
    assert!(addrs.stdout.contains("eth1"), "{addrs}");

    // A daemon killed and started again keeps both endpoints and every name.
    d.kill9();
    d.restart();
    assert!(reaches(&d, "web", "database"), "after a daemon restart");
    assert!(reaches(&d, "db", "api"), "after a daemon restart");
    assert!(reaches(&d, "web", "cli"), "after a daemon restart");

    // Connecting twice is refused, as dockerd does (403).
    let again = d.api(
        "POST",
        "/networks/back/connect",
        Some(r#"{"Container":"web"}"#),
    );
    assert_eq!(again.status, 403, "{}", again.text());
    // Unknown networks are 404, for connect and disconnect.
    for op in ["connect", "disconnect"] {
        let r = d.api(
            "POST",
            &format!("/networks/no-such-net/{op}"),
            Some(r#"{"Container":"web"}"#),
        );
        assert_eq!(r.status, 404, "{op}: {}", r.text());
    }

    d.vmrun(&["network", "disconnect", "back", "web"]).ok();
    assert!(
        !reaches(&d, "db", "api"),
        "the alias went with the endpoint"
    );
    assert!(!reaches(&d, "web", "db"));
    assert!(reaches(&d, "web", "cli"));
    let r = d.api(
        "POST",
        "/networks/back/disconnect",
        Some(r#"{"Container":"web"}"#),
    );
    assert_eq!(r.status, 400, "not connected any more: {}", r.text());
    let nets = d.inspect("web")["NetworkSettings"]["Networks"].clone();
    assert!(nets.get("back").is_none(), "{nets}");

    // A container going away leaves its peers' names (hosts files stay correct).
    d.vmrun(&["rm", "-f", "cli"]).ok();
    assert!(!reaches(&d, "web", "cli"));
}

#[test]
fn connections_of_a_created_container_are_joined_at_start() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.vmrun(&["network", "create", "one"]).ok();
    d.vmrun(&["network", "create", "two"]).ok();
    run_on(&d, "server", "two", &[]);
    d.vmrun(&[
        "create",
        "--name",
        "client",
        "--network",
        "one",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    // What docker-compose 1.x does before starting: disconnect and connect the first
    // network again with aliases, connect the others.
    d.vmrun(&["network", "disconnect", "one", "client"]).ok();
    d.vmrun(&["network", "connect", "--alias", "svc", "one", "client"])
        .ok();
    d.vmrun(&["network", "connect", "two", "client"]).ok();
    let nets = d.inspect("client")["NetworkSettings"]["Networks"].clone();
    assert!(
        nets.get("one").is_some() && nets.get("two").is_some(),
        "{nets}"
    );
    d.vmrun(&["start", "client"]).ok();
    wait_for(Duration::from_secs(10), "client reaching server", || {
        reaches(&d, "client", "server").then_some(())
    });
    assert!(reaches(&d, "server", "client"));
    run_on(&d, "other", "one", &[]);
    assert!(reaches(&d, "other", "svc"), "alias given while stopped");
    assert!(!reaches(&d, "other", "server"));

    // Stopped and started again: both networks come back.
    d.vmrun(&["stop", "-t", "1", "client"]).ok();
    d.vmrun(&["start", "client"]).ok();
    assert!(reaches(&d, "client", "server"));
    assert!(reaches(&d, "client", "other"));
    // The docker CLI sends every `--network` at create (API 1.44+).
    d.docker(&[
        "run",
        "-d",
        "--name",
        "both",
        "--network",
        "one",
        "--network",
        "two",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    assert!(reaches(&d, "both", "server"), "both → two");
    assert!(reaches(&d, "both", "other"), "both → one");
    let nets = d.inspect("both")["NetworkSettings"]["Networks"].clone();
    assert!(
        nets.get("one").is_some() && nets.get("two").is_some(),
        "{nets}"
    );
    d.vmrun(&["rm", "-f", "client", "server", "other", "both"])
        .ok();
    d.vmrun(&["network", "rm", "one", "two"]).ok();
}
