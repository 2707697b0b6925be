//! `vmrun run -d`, `ps`, `exec`, `logs`, `stop`, `start`, `rm`.

use std::time::{Duration, Instant};

use vmrun_e2e::{require_root, Daemon};

fn ps_status(d: &Daemon, name: &str) -> String {
    let out = d.vmrun(&["ps", "-a", "--format", "{{.Names}}\t{{.Status}}"]);
    out.ok();
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}\t")).map(String::from))
        .unwrap_or_else(|| panic!("{name} not in ps -a:\n{out}"))
}

#[test]
fn run_ps_exec_logs_stop_start_rm_round_trip() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let out = d.vmrun(&[
        "run",
        "-d",
        "--name",
        "life",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]);
    out.ok();
    let id = out.out().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full id:\n{out}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{out}");

    assert!(
        ps_status(&d, "life").starts_with("Up"),
        "{}",
        ps_status(&d, "life")
    );
    let ps = d.vmrun(&["ps", "--format", "{{.Names}}"]);
    assert!(
        ps.stdout.lines().any(|l| l == "life"),
        "ps without -a lists it:\n{ps}"
    );

    // exec sees the container's pid namespace: pid 1 is the sleep.
    let top = d.vmrun(&["exec", "life", "ps"]);
    top.ok();
    let pid1 = top
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no pid 1 in exec ps:\n{top}"));
    assert!(pid1.contains("sleep 1000"), "{top}");

    // Output reaches the logs (the shell may need a moment to run).
    vmrun_e2e::wait_for(Duration::from_secs(3), "logs to show 'started'", || {
        (d.vmrun(&["logs", "life"]).stdout == "started\n").then_some(())
    });

    d.vmrun(&["exec", "life", "sh", "-c", "echo kept > /state"])
        .ok();
    let exec_code = d.vmrun(&["exec", "life", "sh", "-c", "exit 7"]);
    exec_code.code_is(7);

    let t0 = Instant::now();
    d.vmrun(&["stop", "-t", "1", "life"]).ok();
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "stop -t 1 took {:?}",
        t0.elapsed()
    );
    assert!(
        ps_status(&d, "life").starts_with("Exited"),
        "{}",
        ps_status(&d, "life")
    );
    assert_eq!(d.state("life").as_deref(), Some("exited"));
    let ps = d.vmrun(&["ps", "--format", "{{.Names}}"]);
    assert!(
        !ps.stdout.lines().any(|l| l == "life"),
        "ps without -a hides it:\n{ps}"
    );

    d.vmrun(&["start", "life"]).ok();
    assert!(
        ps_status(&d, "life").starts_with("Up"),
        "{}",
        ps_status(&d, "life")
    );
    let cat = d.vmrun(&["exec", "life", "cat", "/state"]);
    cat.ok();
    assert_eq!(cat.stdout, "kept\n", "files survive stop/start:\n{cat}");
    assert_eq!(
        d.inspect("life")["Id"],
        id.as_str(),
        "same container after start"
    );

    d.vmrun(&["rm", "-f", "life"]).ok();
    assert_eq!(d.state("life"), None);
    let ps = d.vmrun(&["ps", "-a", "-q"]);
    assert_eq!(ps.out(), "", "{ps}");
    let gone = d.vmrun(&["inspect", "life"]);
    assert!(!gone.success(), "{gone}");
}

#[test]
fn logs_tail_shows_the_last_lines() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let run = d.vmrun(&[
        "run",
        "--name",
        "tail",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; done",
    ]);
    run.ok();
    assert_eq!(run.stdout, "line1\nline2\nline3\nline4\nline5\n", "{run}");
    let all = d.vmrun(&["logs", "tail"]);
    all.ok();
    assert_eq!(all.stdout, "line1\nline2\nline3\nline4\nline5\n", "{all}");
    let last = d.vmrun(&["logs", "--tail", "2", "tail"]);
    last.ok();
    assert_eq!(last.stdout, "line4\nline5\n", "{last}");
}

#[test]
fn logs_separate_stdout_and_stderr() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.vmrun(&[
        "run",
        "--name",
        "streams",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ])
    .ok();
    let logs = d.vmrun(&["logs", "streams"]);
    logs.ok();
    assert_eq!(logs.stdout, "out\n", "{logs}");
    assert_eq!(logs.stderr, "err\n", "{logs}");
}

#[test]
fn logs_follow_returns_when_the_container_exits() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.vmrun(&[
        "run",
        "-d",
        "--name",
        "follow",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4; do echo n$i; sleep 0.3; done",
    ])
    .ok();
    let t0 = Instant::now();
    let out = d.vmrun(&["logs", "-f", "follow"]);
    out.ok();
    assert_eq!(out.stdout, "n1\nn2\nn3\nn4\n", "{out}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "logs -f returned after {:?}",
        t0.elapsed()
    );
    assert_eq!(d.state("follow").as_deref(), Some("exited"));
}
