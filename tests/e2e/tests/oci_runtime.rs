//! `vmrun-runtime` as a runc-compatible OCI runtime, driven by real clients:
//! containerd 1.6's runc shim (`io.containerd.runc.v2`, our binary as
//! `BinaryName` through `ctr --runc-binary`) and podman 4.3 (`--runtime`),
//! each private to the test (own root, state, sockets); plus the CLI alone
//! (lifecycle, state JSON, bad input with runc's exit codes, checked against
//! Debian's runc in the same test when it is installed).
//!
//! Needs root; the containerd tests need `containerd`, the podman tests
//! `podman` (installed by `tests/run.sh` from `installer/packages.sh`). Run:
//! `cargo build -p vmrun-runtime && cargo test -p vmrun-e2e --test oci_runtime`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use vmrun_e2e::oci::{runtime_binary, Containerd, OciBundle, Podman, CTR_BUSYBOX, PODMAN_BUSYBOX};
use vmrun_e2e::terminal::command_under_script;
use vmrun_e2e::{has_tool, require_root, run_with_timeout, wait_for, CmdOutput};
use vmrun_test_skip::skip;

/// One client stack at a time: these start daemons on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn containerd() -> Option<(Containerd, PathBuf)> {
    if !require_root() {
        return None;
    }
    match Containerd::start() {
        Ok(c) => Some((c, runtime_binary())),
        Err(why) => {
            vmrun_test_skip::report(why);
            None
        }
    }
}

/// `ctr run <runtime flags> extra... busybox id cmd...`.
fn ctr_run(ctd: &Containerd, rt: &Path, extra: &[&str], id: &str, cmd: &[&str]) -> CmdOutput {
    let flags = ctd.runtime_flags(rt);
    let mut args: Vec<&str> = vec!["run"];
    args.extend(flags.iter().map(String::as_str));
    args.extend(extra);
    args.extend([CTR_BUSYBOX, id]);
    args.extend(cmd);
    ctd.ctr(&args)
}

#[test]
fn ctr_run_returns_stdout_and_exit_code() {
    let _serial = serial();
    let Some((ctd, rt)) = containerd() else {
        return;
    };
    let out = ctr_run(
        &ctd,
        &rt,
        &["--rm"],
        "run1",
        &["sh", "-c", "echo hello from busybox; exit 3"],
    );
    out.code_is(3);
    assert_eq!(out.out(), "hello from busybox", "{out}");
    ctr_run(&ctd, &rt, &["--rm"], "run2", &["true"]).ok();
    // `--rm` deleted the container in the runtime too (the shim's root is
    // `--runc-root`/<namespace>).
    let left = std::fs::read_dir(ctd.runtime_root.join(&ctd.namespace))
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    assert_eq!(left, 0, "state left under {}", ctd.runtime_root.display());
}

#[test]
fn ctr_task_exec_pause_kill_delete() {
    let _serial = serial();
    let Some((ctd, rt)) = containerd() else {
        return;
    };
    ctr_run(&ctd, &rt, &["-d"], "svc", &["sleep", "1000"]).ok();
    assert_eq!(ctd.task_status("svc").as_deref(), Some("RUNNING"));
    let exec = ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "svc",
        "sh",
        "-c",
        "echo in exec; exit 5",
    ]);
    exec.code_is(5);
    assert_eq!(exec.out(), "in exec", "{exec}");
    // The runtime's ps lists the init (and only live processes).
    let ps = ctd.ctr(&["task", "ps", "svc"]);
    assert_eq!(ps.ok().stdout.lines().count(), 2, "{ps}");
    ctd.ctr(&["task", "pause", "svc"]).ok();
    assert_eq!(ctd.task_status("svc").as_deref(), Some("PAUSED"));
    ctd.ctr(&["task", "resume", "svc"]).ok();
    assert_eq!(ctd.task_status("svc").as_deref(), Some("RUNNING"));
    // --all: the shim runs the runtime's `kill --all`.
    ctd.ctr(&["task", "kill", "--all", "-s", "KILL", "svc"])
        .ok();
    wait_for(Duration::from_secs(10), "task stopped", || {
        (ctd.task_status("svc").as_deref() == Some("STOPPED")).then_some(())
    });
    let delete = ctd.ctr(&["task", "delete", "svc"]);
    delete.ok();
    ctd.ctr(&["container", "rm", "svc"]).ok();
    assert!(
        !ctd.runtime_root.join(&ctd.namespace).join("svc").exists(),
        "runtime state left behind"
    );
}

#[test]
fn ctr_tty_task() {
    let _serial = serial();
    if !has_tool("script") {
        skip!("`script` not installed (apt-get install util-linux)");
    }
    let Some((ctd, rt)) = containerd() else {
        return;
    };
    let mut cmd = ctd.ctr_cmd(&["run", "--rm", "-t"]);
    cmd.args(ctd.runtime_flags(&rt));
    cmd.args([CTR_BUSYBOX, "tty1", "sh", "-c", "tty; exit 2"]);
    let out = under_script(&cmd);
    out.code_is(2);
    // (ctr passes no window size here: `stty size` fails the same way under runc.)
    assert!(out.stdout.contains("/dev/pts/0"), "{out}");
    // A TTY exec in a running task (the console socket again, from `exec`).
    ctr_run(&ctd, &rt, &["-d"], "tty2", &["sleep", "1000"]).ok();
    let cmd = ctd.ctr_cmd(&[
        "task",
        "exec",
        "-t",
        "--exec-id",
        "t1",
        "tty2",
        "sh",
        "-c",
        "tty; exit 4",
    ]);
    let out = under_script(&cmd);
    out.code_is(4);
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
}

#[test]
fn ctr_reports_the_runtime_error_from_the_json_log() {
    let _serial = serial();
    let Some((ctd, rt)) = containerd() else {
        return;
    };
    let out = ctr_run(&ctd, &rt, &["--rm"], "bad1", &["no-such-binary"]);
    assert!(!out.success(), "{out}");
    // The shim read our `--log-format json` error line back.
    assert!(
        out.stderr.contains("executable file not found"),
        "the runtime's error did not reach ctr: {out}"
    );
    let _ = ctd.ctr(&["container", "rm", "bad1"]);
}

fn podman() -> Option<(Podman, PathBuf)> {
    if !require_root() {
        return None;
    }
    let rt = runtime_binary();
    match Podman::start(&rt) {
        Ok(p) => Some((p, rt)),
        Err(why) => {
            vmrun_test_skip::report(why);
            None
        }
    }
}

fn podman_run(p: &Podman, extra: &[&str], cmd: &[&str]) -> CmdOutput {
    let flags = p.run_flags();
    let mut args: Vec<&str> = vec!["run"];
    args.extend(flags.iter().map(String::as_str));
    args.extend(extra);
    args.push(PODMAN_BUSYBOX);
    args.extend(cmd);
    p.podman(&args)
}

#[test]
fn podman_run_rm_echo_and_exit_code() {
    let _serial = serial();
    let Some((p, _rt)) = podman() else { return };
    let out = podman_run(&p, &["--rm"], &["echo", "hello from podman"]);
    out.ok();
    assert_eq!(out.out(), "hello from podman", "{out}");
    podman_run(&p, &["--rm"], &["sh", "-c", "exit 7"]).code_is(7);
}

#[test]
fn podman_detached_exec_stop() {
    let _serial = serial();
    let Some((p, _rt)) = podman() else { return };
    let id = podman_run(&p, &["-d", "--name", "pd1"], &["sleep", "1000"])
        .ok()
        .out()
        .to_owned();
    assert!(
        Podman::runtime_root().join(&id).is_dir(),
        "no runtime state for {id}"
    );
    let exec = p.podman(&["exec", "pd1", "sh", "-c", "echo in exec; exit 4"]);
    exec.code_is(4);
    assert_eq!(exec.out(), "in exec", "{exec}");
    p.podman(&["pause", "pd1"]).ok();
    let state = p.podman(&["inspect", "--format", "{{.State.Status}}", "pd1"]);
    assert_eq!(state.ok().out(), "paused");
    p.podman(&["unpause", "pd1"]).ok();
    // sleep as PID 1 ignores SIGTERM: stop falls back to SIGKILL after 1 s.
    p.podman(&["stop", "-t", "1", "pd1"]).ok();
    let state = p.podman(&["inspect", "--format", "{{.State.Status}}", "pd1"]);
    assert_eq!(state.ok().out(), "exited");
    p.podman(&["rm", "pd1"]).ok();
    assert!(
        !Podman::runtime_root().join(&id).exists(),
        "runtime state left behind"
    );
}

/// Runs `cmd` (program, arguments, environment) under `script` in a 30x100
/// terminal.
fn under_script(cmd: &Command) -> CmdOutput {
    command_under_script(cmd, Duration::from_secs(60))
}

#[test]
fn podman_tty_run_and_exec() {
    let _serial = serial();
    if !has_tool("script") {
        skip!("`script` not installed (apt-get install util-linux)");
    }
    let Some((p, _rt)) = podman() else { return };
    let flags = p.run_flags();
    let mut args: Vec<&str> = vec!["run", "--rm", "-t"];
    args.extend(flags.iter().map(String::as_str));
    args.extend([PODMAN_BUSYBOX, "sh", "-c", "tty; stty size; exit 6"]);
    let out = under_script(&p.podman_cmd(&args));
    out.code_is(6);
    assert!(out.stdout.contains("/dev/pts/0"), "{out}");
    // conmon sizes the terminal from ours.
    assert!(out.stdout.contains("30 100"), "{out}");
    podman_run(&p, &["-d", "--name", "pt1"], &["sleep", "1000"]).ok();
    // exec -t: podman passes our size as the process's consoleSize.
    let cmd = p.podman_cmd(&["exec", "-t", "pt1", "sh", "-c", "tty; stty size; exit 3"]);
    let out = under_script(&cmd);
    out.code_is(3);
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
    assert!(out.stdout.contains("30 100"), "{out}");
    p.podman(&["rm", "-f", "-t", "0", "pt1"]).ok();
}

/// Runs `bin --root <root> args...`.
fn cli(bin: &Path, root: &Path, args: &[&str]) -> CmdOutput {
    let mut cmd = Command::new(bin);
    cmd.arg("--root").arg(root).args(args);
    run_with_timeout(cmd, None, Duration::from_secs(30))
}

#[test]
fn cli_lifecycle_state_ps_events_pause() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let rt = runtime_binary();
    let bundle = OciBundle::new(&rt, &["sleep", "1000"]).expect("bundle");
    let root = bundle.dir.join("state");
    let b = bundle.dir.display().to_string();
    let pid_file = bundle.dir.join("pid");
    let p = pid_file.display().to_string();
    cli(
        &rt,
        &root,
        &["create", "--bundle", &b, "--pid-file", &p, "l1"],
    )
    .ok();
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let state = |want: &str| {
        let out = cli(&rt, &root, &["state", "l1"]);
        let v: serde_json::Value = serde_json::from_str(&out.ok().stdout).unwrap();
        assert_eq!(v["status"], want, "{out}");
        assert_eq!(v["id"], "l1");
        assert_eq!(v["bundle"], b.as_str());
        assert!(
            v["created"].as_str().is_some_and(|c| c.ends_with('Z')),
            "{out}"
        );
        v
    };
    assert_eq!(state("created")["pid"], pid);
    cli(&rt, &root, &["start", "l1"]).ok();
    state("running");
    let ps = cli(&rt, &root, &["ps", "--format", "json", "l1"]);
    assert_eq!(ps.ok().out(), format!("[{pid}]"));
    let events = cli(&rt, &root, &["events", "--stats", "l1"]);
    let v: serde_json::Value = serde_json::from_str(events.ok().out()).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["data"]["pids"]["current"], 1);
    // update: a new memory limit, seen by the next usage event.
    let resources = bundle.dir.join("resources.json");
    std::fs::write(&resources, r#"{"memory":{"limit":67108864}}"#).unwrap();
    let r = resources.display().to_string();
    cli(&rt, &root, &["update", "--resources", &r, "l1"]).ok();
    let events = cli(&rt, &root, &["events", "--stats", "l1"]);
    let v: serde_json::Value = serde_json::from_str(events.ok().out()).unwrap();
    assert_eq!(v["data"]["memory"]["usage"]["limit"], 67108864, "{events}");
    cli(&rt, &root, &["pause", "l1"]).ok();
    state("paused");
    cli(&rt, &root, &["resume", "l1"]).ok();
    let exec = cli(&rt, &root, &["exec", "l1", "sh", "-c", "echo out; exit 6"]);
    exec.code_is(6);
    assert_eq!(exec.out(), "out");
    // A running container is not deleted without --force.
    cli(&rt, &root, &["delete", "l1"]).code_is(1);
    cli(&rt, &root, &["kill", "l1", "KILL"]).ok();
    wait_for(Duration::from_secs(5), "container stopped", || {
        let out = cli(&rt, &root, &["state", "l1"]);
        out.stdout.contains("\"stopped\"").then_some(())
    });
    let kill = cli(&rt, &root, &["kill", "l1"]);
    kill.code_is(1);
    assert!(kill.stderr.contains("container not running"), "{kill}");
    cli(&rt, &root, &["delete", "l1"]).ok();
    cli(&rt, &root, &["state", "l1"]).code_is(1);
    let features = cli(&rt, &root, &["features"]);
    let v: serde_json::Value = serde_json::from_str(&features.ok().stdout).unwrap();
    assert_eq!(v["linux"]["cgroup"]["v1"], true);
}

/// A foreground `run` forwards SIGTERM to the container and exits with its
/// code, and deletes it afterwards.
#[test]
fn cli_run_forwards_signals() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let rt = runtime_binary();
    let script = "trap 'echo got TERM; exit 42' TERM; sleep 1000 & wait";
    let bundle = OciBundle::new(&rt, &["sh", "-c", script]).expect("bundle");
    let root = bundle.dir.join("state");
    let child = Command::new(&rt)
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(&bundle.dir)
        .arg("sig1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), "container running", || {
        let out = cli(&rt, &root, &["state", "sig1"]);
        out.stdout.contains("\"running\"").then_some(())
    });
    // The shell installs its trap right after starting: give it a moment.
    std::thread::sleep(Duration::from_millis(300));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(42), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "got TERM");
    cli(&rt, &root, &["state", "sig1"]).code_is(1);
}

/// Each bad input: exit status 1 (like runc's, compared when runc is
/// installed) and a message naming the problem.
#[test]
fn cli_bad_input_has_runc_exit_codes() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let rt = runtime_binary();
    let runc = has_tool("runc").then(|| PathBuf::from("runc"));
    let bundle = OciBundle::new(&rt, &["sleep", "1000"]).expect("bundle");
    let malformed = bundle.dir.join("malformed");
    std::fs::create_dir_all(malformed.join("rootfs")).unwrap();
    std::fs::write(malformed.join("config.json"), "{ not json").unwrap();
    let ours = bundle.dir.join("ours");
    let theirs = bundle.dir.join("theirs");
    let b = bundle.dir.display().to_string();
    let m = malformed.display().to_string();
    let missing = bundle.dir.join("missing").display().to_string();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "missing bundle",
            vec!["create", "--bundle", &missing, "x1"],
            "no such directory",
        ),
        (
            "malformed config.json",
            vec!["create", "--bundle", &m, "x2"],
            "malformed",
        ),
        ("unknown id: state", vec!["state", "nope"], "does not exist"),
        ("unknown id: start", vec!["start", "nope"], "does not exist"),
        (
            "unknown id: kill",
            vec!["kill", "nope", "KILL"],
            "does not exist",
        ),
        (
            "unknown id: delete",
            vec!["delete", "nope"],
            "does not exist",
        ),
        (
            "unknown command",
            vec!["no-such-command"],
            "no-such-command",
        ),
    ];
    for (what, args, message) in &cases {
        let out = cli(&rt, &ours, args);
        let want = match &runc {
            Some(runc) => cli(runc, &theirs, args).code,
            None => 1,
        };
        let want = if *what == "unknown command" { 3 } else { want };
        assert_eq!(out.code, want, "{what}: runc exits {want}\n{out}");
        assert!(out.stderr.contains(message), "{what}: message\n{out}");
    }
    // delete --force of an unknown id succeeds, like runc.
    cli(&rt, &ours, &["delete", "--force", "nope"]).ok();
    // A second create with the same id: refused, the first one untouched.
    cli(&rt, &ours, &["create", "--bundle", &b, "dup"]).ok();
    let second = cli(&rt, &ours, &["create", "--bundle", &b, "dup"]);
    second.code_is(1);
    assert!(second.stderr.contains("already exists"), "{second}");
    if let Some(runc) = &runc {
        cli(runc, &theirs, &["create", "--bundle", &b, "dup"]).ok();
        cli(runc, &theirs, &["create", "--bundle", &b, "dup"]).code_is(1);
        cli(runc, &theirs, &["delete", "--force", "dup"]).ok();
    }
    assert!(cli(&rt, &ours, &["state", "dup"])
        .ok()
        .stdout
        .contains("\"created\""));
    cli(&rt, &ours, &["delete", "dup"]).ok();
    // --systemd-cgroup is refused with a message saying what to do.
    let systemd = cli(&rt, &ours, &["--systemd-cgroup", "state", "dup"]);
    systemd.code_is(1);
    assert!(systemd.stderr.contains("cgroupfs"), "{systemd}");
    // --log-format json: the error as containerd's shim reads it.
    let log = bundle.dir.join("log.json");
    let l = log.display().to_string();
    cli(
        &rt,
        &ours,
        &["--log", &l, "--log-format", "json", "state", "nope"],
    )
    .code_is(1);
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("does not exist"));
}

#[test]
fn cli_console_socket_gets_the_terminal() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let rt = runtime_binary();
    let bundle = OciBundle::new(&rt, &["sh", "-c", "tty; sleep 1000"]).expect("bundle");
    let config = bundle.dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    v["process"]["terminal"] = true.into();
    std::fs::write(&config, v.to_string()).unwrap();
    let root = bundle.dir.join("state");
    let b = bundle.dir.display().to_string();
    // Without a socket a detached terminal is refused, like runc.
    cli(&rt, &root, &["create", "--bundle", &b, "t0"]).code_is(1);
    let sock_path = bundle.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let s = sock_path.display().to_string();
    let accept = std::thread::spawn(move || receive_fd(&listener));
    cli(
        &rt,
        &root,
        &["create", "--bundle", &b, "--console-socket", &s, "t1"],
    )
    .ok();
    let master = accept.join().unwrap();
    cli(&rt, &root, &["start", "t1"]).ok();
    let mut file = std::fs::File::from(master);
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("/dev/pts/0") {
        let n = std::io::Read::read(&mut file, &mut buf).unwrap();
        assert!(
            n > 0,
            "terminal closed: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    cli(&rt, &root, &["delete", "--force", "t1"]).ok();
}

/// Accepts one connection and receives one fd with `SCM_RIGHTS`.
fn receive_fd(listener: &std::os::unix::net::UnixListener) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd};
    let (stream, _) = listener.accept().unwrap();
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed this fd for us; nothing else owns it.
            return unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received");
}
