//! Restart policies on real containers: `on-failure:N` gives up after N restarts,
//! `always` brings a crashed container back, `docker kill` and `docker stop` are final
//! (as with dockerd), and a daemon restart brings back `always` containers (and killed
//! ones) but not stopped `unless-stopped` ones.

use std::time::Duration;

use vmrun_e2e::{require_root, wait_for, Daemon};

fn restart_count(d: &Daemon, name: &str) -> i64 {
    d.inspect(name)["RestartCount"].as_i64().unwrap_or(-1)
}

#[test]
fn on_failure_gives_up_after_its_limit() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ])
    .ok();
    wait_for(Duration::from_secs(30), "two restarts", || {
        (restart_count(&d, "flaky") == 2 && d.state("flaky").as_deref() == Some("exited"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let inspect = d.inspect("flaky");
    assert_eq!(inspect["RestartCount"], 2, "{}", inspect["State"]);
    assert_eq!(inspect["State"]["ExitCode"], 3);
    assert_eq!(inspect["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(
        inspect["HostConfig"]["RestartPolicy"]["MaximumRetryCount"],
        2
    );
    // Refused combinations, as dockerd refuses them.
    let r = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"always","MaximumRetryCount":3}}}"#),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#),
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn always_comes_back_until_stopped_and_after_a_daemon_restart() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start();
    // Crashes (exit 7) when /tmp/die appears.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "rm -f /tmp/die; while [ ! -f /tmp/die ]; do sleep 0.2; done; exit 7",
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "keep",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let pid = d.inspect("svc")["State"]["Pid"].as_i64().unwrap();
    d.docker(&["exec", "svc", "touch", "/tmp/die"]).ok();
    wait_for(Duration::from_secs(20), "svc running again", || {
        let s = d.inspect("svc");
        let new_pid = s["State"]["Pid"].as_i64().unwrap_or(0);
        (s["State"]["Status"] == "running" && new_pid != pid && new_pid != 0).then_some(())
    });
    assert_eq!(restart_count(&d, "svc"), 1);
    // A kill is final, as with dockerd (but not a stop: the daemon restart brings it back).
    d.docker(&["kill", "keep"]).ok();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.state("keep").as_deref(), Some("exited"));
    assert_eq!(restart_count(&d, "keep"), 0);

    d.docker(&["stop", "-t", "1", "svc"]).ok();
    d.docker(&["stop", "-t", "1", "quiet"]).ok();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.state("svc").as_deref(), Some("exited"), "stop is final");

    d.stop();
    d.restart();
    wait_for(
        Duration::from_secs(20),
        "svc started by the new daemon",
        || (d.state("svc").as_deref() == Some("running")).then_some(()),
    );
    assert_eq!(d.state("keep").as_deref(), Some("running"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        d.state("quiet").as_deref(),
        Some("exited"),
        "a stopped unless-stopped container stays stopped"
    );
    d.docker(&["rm", "-f", "svc", "keep", "quiet"]).ok();
}

#[test]
fn a_flapping_container_shows_restarting_and_a_stop_ends_it() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "flap",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ])
    .ok();
    // The back-off grows (100 ms, 200 ms, ... 6.4 s): ps catches it waiting.
    wait_for(Duration::from_secs(60), "ps to show Restarting", || {
        let ps = d.docker(&["ps", "--format", "{{.Names}}|{{.Status}}"]);
        ps.stdout
            .lines()
            .any(|l| l.starts_with("flap|Restarting (1)"))
            .then(|| d.inspect("flap"))
            .filter(|i| i["State"]["Restarting"] == true && i["RestartCount"].as_i64() >= Some(3))
            .map(|_| ())
    });
    d.docker(&["stop", "flap"]).ok();
    let inspect = d.inspect("flap");
    assert_eq!(
        inspect["State"]["Restarting"], false,
        "{}",
        inspect["State"]
    );
    let count = restart_count(&d, "flap");
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(d.state("flap").as_deref(), Some("exited"));
    assert_eq!(
        restart_count(&d, "flap"),
        count,
        "no restart after the stop"
    );
}
