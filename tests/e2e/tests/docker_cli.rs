//! The real docker CLI (28.x) against our daemon.

use std::time::Duration;

use vmrun_e2e::{require_root, require_tool, run_with_timeout, Daemon};

fn ready() -> bool {
    require_root() && require_tool("docker")
}

#[test]
fn docker_run_rm_echo() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let out = d.docker(&["run", "--rm", "busybox", "echo", "hi"]);
    out.ok();
    assert_eq!(out.stdout, "hi\n", "{out}");
    let out = d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 42"]);
    out.code_is(42);
    let ps = d.docker(&["ps", "-aq"]);
    ps.ok();
    assert_eq!(ps.out(), "", "--rm removed them:\n{ps}");
}

#[test]
fn docker_ps_exec_logs_inspect() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "dk",
        "-e",
        "MARK=m1",
        "busybox",
        "sh",
        "-c",
        "echo hello-logs; exec sleep 300",
    ])
    .ok();
    d.docker(&["run", "--name", "dk-done", "busybox", "true"])
        .ok();

    let ps = d.docker(&["ps", "-a", "--format", "{{.Names}}|{{.Image}}|{{.Status}}"]);
    ps.ok();
    let line = |name: &str| {
        ps.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name}|")))
            .unwrap_or_else(|| panic!("{name} missing:\n{ps}"))
            .to_string()
    };
    assert!(line("dk").starts_with("dk|busybox|Up"), "{ps}");
    assert!(
        line("dk-done").starts_with("dk-done|busybox|Exited (0)"),
        "{ps}"
    );
    let running = d.docker(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(running.out(), "dk", "{running}");

    let exec = d.docker(&[
        "exec",
        "dk",
        "sh",
        "-c",
        "echo $MARK; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    exec.ok();
    assert_eq!(exec.stdout, "m1\nsleep 300 ", "{exec}");
    d.docker(&["exec", "dk", "sh", "-c", "exit 9"]).code_is(9);
    let exec = d.docker(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "dk",
        "sh",
        "-c",
        "id -u; pwd",
    ]);
    exec.ok();
    assert_eq!(exec.stdout, "65534\n/tmp\n", "{exec}");

    let logs = d.docker(&["logs", "dk"]);
    logs.ok();
    assert_eq!(logs.stdout, "hello-logs\n", "{logs}");

    let inspect = d.docker(&[
        "inspect", "-f",
        "{{.Name}} {{.State.Status}} {{.State.Running}} {{.Config.Image}} {{index .Config.Cmd 0}} {{.State.Pid}}",
        "dk",
    ]);
    inspect.ok();
    let fields: Vec<&str> = inspect.out().split(' ').collect();
    assert_eq!(
        &fields[..5],
        &["/dk", "running", "true", "busybox", "sh"],
        "{inspect}"
    );
    let pid: i32 = fields[5].parse().expect("a pid");
    assert!(
        pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "{inspect}"
    );
    let json = d.docker(&["inspect", "dk"]);
    json.ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("inspect prints JSON");
    assert!(
        v[0]["Id"].as_str().is_some_and(|id| id.len() == 64),
        "{json}"
    );
    assert!(v[0]["Config"]["Env"]
        .as_array()
        .is_some_and(|e| e.iter().any(|x| x == "MARK=m1")));

    d.docker(&["stop", "-t", "1", "dk"]).ok();
    d.docker(&["rm", "dk", "dk-done"]).ok();
    assert_eq!(d.docker(&["ps", "-aq"]).out(), "");
}

#[test]
fn docker_run_interactive_with_piped_stdin() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    // The docker CLI writes stdin (and half-closes) right after the attach upgrade,
    // before it starts the container: the daemon must keep those bytes and the EOF.
    let piped = |args: &[&str], input: &[u8]| {
        run_with_timeout(d.docker_cmd(args), Some(input), Duration::from_secs(10))
    };
    let out = piped(&["run", "-i", "--rm", "busybox", "cat"], b"data\n");
    out.ok();
    assert_eq!(out.stdout, "data\n", "{out}");
    let out = piped(
        &["run", "-i", "--rm", "busybox", "sh", "-c", "wc -l; exit 2"],
        b"a\nb\nc\n",
    );
    out.code_is(2);
    assert_eq!(out.out(), "3", "{out}");
}

#[test]
fn vmrun_run_interactive_with_piped_stdin() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let out = d.vmrun_stdin(&["run", "-i", "--rm", "busybox", "cat"], b"data\n");
    out.ok();
    assert_eq!(out.stdout, "data\n", "{out}");
}

#[test]
fn docker_errors_have_dockers_shape() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let out = d.docker(&["run", "--rm", "busybox", "nosuch"]);
    out.code_is(127);
    assert!(
        out.stderr
            .contains(r#"exec: "nosuch": executable file not found in $PATH"#),
        "{out}"
    );
    let out = d.docker(&["inspect", "nothere"]);
    out.code_is(1);
    assert!(out.stderr.contains("No such object: nothere"), "{out}");
}
