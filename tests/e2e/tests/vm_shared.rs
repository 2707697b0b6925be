//! The shared VM (`vmrund --mode vm`): every container runs in one Linux VM (QEMU TCG on
//! PVM hosts), managed with `vmrun vm status|start|stop`; image layers are copied into it
//! once, and writable layers live on its data disk across VM and daemon restarts; a larger
//! configured size grows that disk.
//!
//! Needs root, the docker CLI, a VM backend (QEMU + vhost-device-vsock), the guest kernel
//! and the agent initramfs; skips, saying which, when the daemon has no shared VM.

use std::time::{Duration, Instant};

use vmrun_e2e::vm::{docker, layer_copies, shared_vm_daemon, vmrun, VM_COMMAND_TIMEOUT};
use vmrun_e2e::{require_tool, run_with_timeout, Daemon};

fn status(d: &Daemon) -> serde_json::Value {
    let out = vmrun(d, &["vm", "status", "--json"]);
    out.ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn host_file(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn shared_vm_runs_containers_in_one_guest_and_keeps_their_files_across_restarts() {
    let Some(d) = shared_vm_daemon() else { return };
    assert_eq!(status(&d)["State"], "stopped", "it boots on demand");
    let started = Instant::now();
    let out = docker(&d, &["run", "--rm", "busybox", "echo", "hi"]);
    out.ok();
    assert_eq!(out.stdout, "hi\n", "{out}");
    eprintln!("first run (boots the VM): {:?}", started.elapsed());
    let started = Instant::now();
    docker(&d, &["run", "--rm", "busybox", "true"]).ok();
    eprintln!(
        "run --rm busybox true in the running VM: {:?}",
        started.elapsed()
    );

    docker(&d, &["run", "--rm", "busybox", "sh", "-c", "exit 3"]).code_is(3);
    docker(&d, &["run", "--rm", "busybox", "no-such-command"]).code_is(127);

    // One guest kernel for all: not the host's, the same boot id in two containers.
    let kernel = docker(&d, &["run", "--rm", "busybox", "uname", "-r"]);
    kernel.ok();
    assert_ne!(
        kernel.stdout.trim(),
        host_file("/proc/sys/kernel/osrelease")
    );
    let boot_id = "/proc/sys/kernel/random/boot_id";
    let a = docker(&d, &["run", "--rm", "busybox", "cat", boot_id]);
    let b = docker(&d, &["run", "--rm", "busybox", "cat", boot_id]);
    assert_eq!(a.stdout, b.stdout, "{a}{b}");
    assert_ne!(a.stdout.trim(), host_file(boot_id));

    let s = status(&d);
    assert_eq!(s["State"], "running", "{s}");
    assert_eq!(s["Cpus"], 2, "{s}");
    assert_eq!(s["MemoryMib"], 512, "{s}");
    assert!(!s["Backend"].as_str().unwrap_or_default().is_empty(), "{s}");
    assert!(
        ["kvm", "tcg"].contains(&s["Accelerator"].as_str().unwrap_or_default()),
        "{s}"
    );
    let text = vmrun(&d, &["vm", "status"]);
    text.ok();
    assert!(text.stdout.contains("State:       running"), "{text}");

    // A stopped container's files survive a VM restart.
    docker(
        &d,
        &[
            "run",
            "--name",
            "keep",
            "busybox",
            "sh",
            "-c",
            "cat /kept 2>/dev/null || echo kept > /kept",
        ],
    )
    .ok();
    let info = d.inspect("keep");
    assert_eq!(info["HostConfig"]["Isolation"], "shared-vm", "{info}");
    assert_eq!(info["GraphDriver"]["Data"]["Vm"], "shared", "{info}");
    docker(
        &d,
        &["run", "-d", "--name", "sleeper", "busybox", "sleep", "300"],
    )
    .ok();
    assert_eq!(status(&d)["Containers"], 1);
    let stop = vmrun(&d, &["vm", "stop", "-t", "1"]);
    stop.ok();
    assert!(stop.stdout.contains("State:       stopped"), "{stop}");
    assert_eq!(d.state("sleeper").as_deref(), Some("exited"));
    let again = docker(&d, &["start", "-a", "keep"]);
    again.ok();
    assert_eq!(again.stdout, "kept\n", "{again}");
    assert_eq!(status(&d)["State"], "running", "start booted it again");
    // The busybox layer was copied into the VM once, and found on the data disk after the
    // restart.
    assert_eq!(layer_copies(&d), 1, "{}", d.log_tail(40));
    docker(&d, &["rm", "-f", "keep", "sleeper"]).ok();
}

#[test]
fn shared_vm_detached_logs_exec_stop_start_rm() {
    let Some(d) = shared_vm_daemon() else { return };
    docker(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "svc",
            "-e",
            "GREETING=hello",
            "-w",
            "/tmp",
            "busybox",
            "sh",
            "-c",
            "echo $GREETING from $(pwd); sleep 300",
        ],
    )
    .ok();
    vmrun_e2e::wait_for(Duration::from_secs(30), "the first log line", || {
        let logs = docker(&d, &["logs", "svc"]);
        (logs.stdout == "hello from /tmp\n").then_some(())
    });
    let exec = docker(&d, &["exec", "svc", "sh", "-c", "echo $GREETING; id -u"]);
    exec.ok();
    assert_eq!(exec.stdout, "hello\n0\n", "{exec}");
    let user = docker(&d, &["exec", "-u", "nobody", "svc", "id", "-un"]);
    user.ok();
    assert_eq!(user.stdout.trim(), "nobody", "{user}");
    let top = docker(&d, &["top", "svc"]);
    top.ok();
    assert!(top.stdout.contains("sleep 300"), "{top}");
    // `logs -f` follows while it runs and ends when it stops.
    let follow = std::thread::spawn({
        let cmd = d.docker_cmd(&["logs", "-f", "svc"]);
        move || run_with_timeout(cmd, None, VM_COMMAND_TIMEOUT)
    });
    std::thread::sleep(Duration::from_millis(500));
    docker(&d, &["stop", "-t", "1", "svc"]).ok();
    let followed = follow.join().expect("logs -f thread");
    followed.ok();
    assert_eq!(followed.stdout, "hello from /tmp\n", "{followed}");
    assert_eq!(d.state("svc").as_deref(), Some("exited"));
    docker(&d, &["start", "svc"]).ok();
    assert_eq!(d.state("svc").as_deref(), Some("running"));
    docker(&d, &["rm", "-f", "svc"]).ok();
    assert!(docker(&d, &["inspect", "svc"]).code != 0);
}

#[test]
fn a_restarted_daemon_finds_shared_vm_containers_and_their_files() {
    let Some(mut d) = shared_vm_daemon() else {
        return;
    };
    docker(
        &d,
        &[
            "run",
            "--name",
            "keep",
            "busybox",
            "sh",
            "-c",
            "cat /kept 2>/dev/null || echo kept > /kept",
        ],
    )
    .ok();
    docker(
        &d,
        &["run", "-d", "--name", "orphan", "busybox", "sleep", "300"],
    )
    .ok();
    let vm_pid = status(&d)["Pid"].as_u64().expect("a running VM has a pid");
    d.kill9();
    vmrun_e2e::wait_process_gone(
        vm_pid,
        Duration::from_secs(10),
        "the VM to die with the daemon",
    );
    d.restart();
    assert_eq!(status(&d)["State"], "stopped");
    let info = d.inspect("orphan");
    assert_eq!(info["State"]["Status"], "exited", "{info}");
    // A container removed while the VM is down loses its writable layer at the next boot.
    docker(&d, &["rm", "orphan"]).ok();
    let again = docker(&d, &["start", "-a", "keep"]);
    again.ok();
    assert_eq!(again.stdout, "kept\n", "{again}");
    docker(&d, &["rm", "keep"]).ok();

    // SIGTERM with the VM running: the daemon ends promptly and the VM with it.
    let vm_pid = status(&d)["Pid"].as_u64().expect("the VM runs again");
    let asked = Instant::now();
    d.stop();
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "SIGTERM took {:?} (the harness kills after 10 s)",
        asked.elapsed()
    );
    vmrun_e2e::wait_process_gone(
        vm_pid,
        Duration::from_secs(10),
        "the VM to end with the daemon",
    );
}

#[test]
fn shared_vm_faults_oom_garbage_and_a_dead_vm() {
    let Some(d) = shared_vm_daemon() else { return };
    // OOM inside the VM: the container's cgroup limit, not the VM's memory.
    let oom = docker(
        &d,
        &[
            "run",
            "--name",
            "hog",
            "-m",
            "32m",
            "busybox",
            "tail",
            "/dev/zero",
        ],
    );
    oom.code_is(137);
    let info = d.inspect("hog");
    assert_eq!(info["State"]["OOMKilled"], true, "{}", info["State"]);
    docker(&d, &["rm", "hog"]).ok();

    // Garbage on the agent's port gets an error reply; the agent keeps serving.
    let vsock = d.exec_root().join("vm/shared.vsock");
    let reply = agent_garbage_reply(&vsock);
    assert!(
        reply.contains("refused") || reply.contains("error") || reply.contains("expected"),
        "agent reply to garbage: {reply:?}"
    );
    docker(&d, &["run", "--rm", "busybox", "true"]).ok();

    // The VM dies under a running container: it exits with the reason, the daemon stays
    // up, and the next run boots a new VM.
    docker(
        &d,
        &["run", "-d", "--name", "doomed", "busybox", "sleep", "300"],
    )
    .ok();
    let pid = status(&d)["Pid"].as_u64().expect("a running VM has a pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("killing the VM's monitor");
    d.wait_state("doomed", "exited", Duration::from_secs(30));
    let state = d.inspect("doomed")["State"].clone();
    assert!(
        state["Error"].as_str().unwrap_or_default().contains("VM"),
        "{state}"
    );
    let out = docker(&d, &["run", "--rm", "busybox", "echo", "again"]);
    out.ok();
    assert_eq!(out.stdout, "again\n");
    let s = status(&d);
    assert_eq!(s["State"], "running", "{s}");
    assert_ne!(s["Pid"].as_u64(), Some(pid), "a new VM");
    assert!(
        s["LastExit"].as_str().is_some_and(|w| !w.is_empty()),
        "the last exit is kept: {s}"
    );
    docker(&d, &["rm", "doomed"]).ok();
}

/// Connects to the agent through the VM's hybrid-vsock socket, sends a frame that is not a
/// hello, and returns what comes back (the agent's refusal, as text).
fn agent_garbage_reply(vsock: &std::path::Path) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(vsock)
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", vsock.display()));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"CONNECT 1024\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut ok = String::new();
    r.read_line(&mut ok).unwrap();
    assert!(ok.starts_with("OK "), "hybrid vsock answered {ok:?}");
    let body = b"this is not json";
    s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut reply = Vec::new();
    let _ = r.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn shared_vm_exec_it_gets_a_pty_of_the_clients_size() {
    if !require_tool("script") {
        return;
    }
    let Some(d) = shared_vm_daemon() else { return };
    docker(
        &d,
        &["run", "-d", "--name", "term", "busybox", "sleep", "300"],
    )
    .ok();
    let line = format!(
        "docker -H {} exec -it term sh -c 'tty; stty size; exit 3'",
        vmrun_e2e::terminal::shell_quote(&d.host())
    );
    let out = vmrun_e2e::terminal::under_script(&d, &line, VM_COMMAND_TIMEOUT);
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
    assert_eq!(
        vmrun_e2e::terminal::stty_size(&out).as_deref(),
        Some("30 100"),
        "{out}"
    );
    out.code_is(3);
    docker(&d, &["rm", "-f", "term"]).ok();
}

#[test]
fn shared_vm_containers_diff_and_commit_running_and_stopped() {
    let Some(d) = shared_vm_daemon() else { return };
    docker(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "maker",
            "busybox",
            "sh",
            "-c",
            "echo made > /made && rm /bin/vi && mkdir /d && touch /d/f && sleep 600",
        ],
    )
    .ok();
    vmrun_e2e::wait_for(Duration::from_secs(60), "the container's files", || {
        docker(&d, &["exec", "maker", "test", "-e", "/d/f"])
            .success()
            .then_some(())
    });
    docker(&d, &["commit", "maker", "e2e/running"]).ok();
    // docker diff of a container in the VM: from its writable layer fetched to the host.
    let diff = docker(&d, &["diff", "maker"]);
    diff.ok();
    for line in ["C /bin", "D /bin/vi", "A /d", "A /d/f", "A /made"] {
        assert!(diff.stdout.lines().any(|l| l == line), "{line}: {diff}");
    }
    docker(&d, &["stop", "-t", "1", "maker"]).ok();
    docker(
        &d,
        &[
            "commit",
            "-c",
            "CMD [\"cat\", \"/made\"]",
            "maker",
            "e2e/stopped",
        ],
    )
    .ok();
    for image in ["e2e/running", "e2e/stopped"] {
        let out = docker(
            &d,
            &[
                "run",
                "--rm",
                image,
                "sh",
                "-c",
                "cat /made; ls /d; test -e /bin/vi || echo no-vi",
            ],
        );
        out.ok();
        assert_eq!(out.stdout, "made\nf\nno-vi\n", "{image}: {out}");
    }
    let out = docker(&d, &["run", "--rm", "e2e/stopped"]);
    assert_eq!(out.stdout, "made\n", "{out}");
    docker(&d, &["rm", "maker"]).ok();
}

#[test]
fn builds_in_vm_mode_run_their_steps_in_the_shared_vm() {
    let Some(d) = shared_vm_daemon() else { return };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN uname -r > /built-on && rm /bin/vi\nCOPY note /note\nCMD [\"cat\", \"/built-on\", \"/note\"]\n",
    )
    .unwrap();
    std::fs::write(ctx.path().join("note"), "noted\n").unwrap();
    let mut cmd = d.docker_cmd(&["build", "-t", "e2e/vm-built", ctx.path().to_str().unwrap()]);
    cmd.env("DOCKER_BUILDKIT", "0");
    let out = run_with_timeout(cmd, None, VM_COMMAND_TIMEOUT);
    out.ok();
    // The RUN step ran in the shared VM: its kernel, not the host's.
    let run = docker(&d, &["run", "--rm", "e2e/vm-built"]);
    run.ok();
    let guest_kernel = docker(&d, &["run", "--rm", "busybox", "uname", "-r"]);
    assert_eq!(
        run.stdout,
        format!("{}noted\n", guest_kernel.stdout),
        "{run}"
    );
    assert_ne!(
        guest_kernel.stdout.trim(),
        host_file("/proc/sys/kernel/osrelease")
    );
    let vi = docker(
        &d,
        &["run", "--rm", "e2e/vm-built", "test", "-e", "/bin/vi"],
    );
    assert_eq!(vi.code, 1, "the deletion is in the layer: {vi}");
    assert_eq!(docker(&d, &["ps", "-aq"]).stdout, "", "no container left");
}
