//! The daemon dies (SIGKILL) and a new one on the same roots picks up its containers.

use std::time::Duration;

use vmrun_e2e::{require_root, Daemon};

/// The `tickN` lines of `logs`, checked to be contiguous from tick0; returns the count.
fn contiguous_ticks(logs: &str) -> usize {
    let lines: Vec<&str> = logs.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("tick{i}"), "log line {i} of:\n{logs}");
    }
    lines.len()
}

#[test]
fn containers_survive_a_daemon_crash_and_are_managed_by_the_next_daemon() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start();
    d.vmrun(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done",
    ])
    .ok();
    d.vmrun(&[
        "run",
        "--name",
        "done",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two; exit 4",
    ])
    .code_is(4);
    let ticker_before = d.inspect("ticker");
    let pid = ticker_before["State"]["Pid"].as_i64().expect("running pid");
    std::thread::sleep(Duration::from_millis(500));

    d.kill9();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the container must outlive the daemon"
    );
    std::thread::sleep(Duration::from_millis(300));
    d.restart();

    let ps = d.vmrun(&["ps", "-a", "--format", "{{.Names}}\t{{.Status}}"]);
    ps.ok();
    let status = |name: &str| {
        ps.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("{name} missing after restart:\n{ps}"))
            .to_string()
    };
    assert!(status("ticker").starts_with("Up"), "{ps}");
    assert!(status("done").starts_with("Exited (4)"), "{ps}");

    let ticker = d.inspect("ticker");
    assert_eq!(ticker["State"]["Status"], "running");
    assert_eq!(ticker["State"]["Pid"].as_i64(), Some(pid), "same process");
    assert_eq!(ticker["Id"], ticker_before["Id"]);

    let done_logs = d.vmrun(&["logs", "done"]);
    done_logs.ok();
    assert_eq!(done_logs.stdout, "one\ntwo\n", "{done_logs}");

    // The ticker's log is complete across the crash and keeps growing.
    let first = d.vmrun(&["logs", "ticker"]);
    first.ok();
    let n1 = contiguous_ticks(&first.stdout);
    assert!(
        n1 >= 6,
        "expected at least 6 ticks before and during the crash:\n{first}"
    );
    std::thread::sleep(Duration::from_millis(600));
    let second = d.vmrun(&["logs", "ticker"]);
    let n2 = contiguous_ticks(&second.stdout);
    assert!(
        n2 > n1 + 2,
        "logs stopped growing after the restart: {n1} then {n2}"
    );

    // The new daemon can stop it and sees its exit.
    d.vmrun(&["stop", "-t", "1", "ticker"]).ok();
    assert_eq!(d.state("ticker").as_deref(), Some("exited"));
    vmrun_e2e::wait_for(
        Duration::from_secs(2),
        "the ticker process to be gone",
        || (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(()),
    );
    let code = d.inspect("ticker")["State"]["ExitCode"].as_i64();
    assert_eq!(
        code,
        Some(137),
        "sh ignores SIGTERM as pid 1, so stop kills it"
    );
}

#[test]
fn a_graceful_daemon_restart_keeps_containers_running() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start();
    d.vmrun(&["run", "-d", "--name", "keep", "busybox", "sleep", "300"])
        .ok();
    let pid = d.inspect("keep")["State"]["Pid"].as_i64();
    d.stop();
    d.restart();
    let after = d.inspect("keep");
    assert_eq!(after["State"]["Status"], "running");
    assert_eq!(after["State"]["Pid"].as_i64(), pid);
    d.vmrun(&["exec", "keep", "true"]).ok();
    d.vmrun(&["rm", "-f", "keep"]).ok();
    assert_eq!(d.state("keep"), None);
}
