//! Resource limits: memory (OOM kill) and pids.

use vmrun_e2e::{require_root, Daemon};

#[test]
fn memory_limit_oom_kills_with_137_and_reports_oomkilled() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let out = d.vmrun(&[
        "run",
        "--name",
        "oom",
        "-m",
        "16m",
        "busybox",
        "sh",
        "-c",
        r#"x=$(head -c 64m /dev/zero | tr "\0" a)"#,
    ]);
    out.code_is(137);
    let oom = d.vmrun(&["inspect", "-f", "{{.State.OOMKilled}}", "oom"]);
    oom.ok();
    assert_eq!(oom.out(), "true", "{oom}");
    let state = d.inspect("oom");
    assert_eq!(state["State"]["ExitCode"], 137);
    assert_eq!(state["HostConfig"]["Memory"], 16 * 1024 * 1024);
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let out = d.vmrun(&[
        "run",
        "--rm",
        "--pids-limit",
        "10",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 30); do sleep 1 & done; wait; echo finished",
    ]);
    assert!(out.all().contains("can't fork"), "{out}");
    // Without a limit the same loop works.
    let out = d.vmrun(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 30); do sleep 1 & done; wait; echo finished",
    ]);
    out.ok();
    assert!(!out.all().contains("can't fork"), "{out}");
    assert_eq!(out.out(), "finished", "{out}");
}
