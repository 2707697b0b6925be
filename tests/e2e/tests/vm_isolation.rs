//! Containers in microVMs (`docker run --isolation vm`) through the real docker CLI: each
//! container boots its own VM (QEMU TCG on PVM hosts, ~2–5 s), so this file keeps to a
//! handful of tests, each doing several things with one daemon.
//!
//! Needs root, the docker CLI, a VM backend (QEMU + vhost-device-vsock), the guest kernel
//! (`kernel-config/build.sh`) and the agent initramfs (`installer/agent-initramfs.sh`);
//! skips, saying which, when the daemon reports VM isolation unavailable.

use std::time::{Duration, Instant};

use vmrun_e2e::vm::{docker, isolation_daemon, VM_COMMAND_TIMEOUT};
use vmrun_e2e::{run_with_timeout, Daemon};

/// `docker run -d --isolation vm --name NAME busybox sleep 300`.
fn run_sleeping_vm(d: &Daemon, name: &str) {
    docker(
        d,
        &[
            "run",
            "-d",
            "--isolation",
            "vm",
            "--name",
            name,
            "busybox",
            "sleep",
            "300",
        ],
    )
    .ok();
}

/// The VM monitor's pid from a container's inspect.
fn vm_pid(info: &serde_json::Value) -> i32 {
    info["GraphDriver"]["Data"]["VmPid"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no VmPid: {info}"))
}

fn host_file(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn vm_run_output_exit_codes_and_its_own_kernel() {
    let Some(d) = isolation_daemon() else { return };
    let started = Instant::now();
    docker(&d, &["run", "--rm", "--isolation", "vm", "busybox", "true"]).ok();
    eprintln!(
        "docker run --rm --isolation vm busybox true: {:?}",
        started.elapsed()
    );

    let out = docker(
        &d,
        &["run", "--rm", "--isolation", "vm", "busybox", "echo", "hi"],
    );
    out.ok();
    assert_eq!(out.stdout, "hi\n", "{out}");
    docker(
        &d,
        &[
            "run",
            "--rm",
            "--runtime",
            "vmrun-vm",
            "busybox",
            "sh",
            "-c",
            "exit 3",
        ],
    )
    .code_is(3);
    docker(
        &d,
        &[
            "run",
            "--rm",
            "--isolation",
            "vm",
            "busybox",
            "no-such-command",
        ],
    )
    .code_is(127);
    // An OOM kill by the container's limit inside the VM: 137, as natively.
    docker(
        &d,
        &[
            "run",
            "--rm",
            "--isolation",
            "vm",
            "-m",
            "32m",
            "busybox",
            "tail",
            "/dev/zero",
        ],
    )
    .code_is(137);

    let out = docker(
        &d,
        &["run", "--rm", "--isolation", "vm", "busybox", "uname", "-r"],
    );
    out.ok();
    let host = host_file("/proc/sys/kernel/osrelease");
    assert!(!out.out().is_empty(), "{out}");
    assert_ne!(out.out(), host, "the guest runs its own kernel: {out}");

    let out = run_with_timeout(
        d.docker_cmd(&["run", "--rm", "-i", "--isolation", "vm", "busybox", "cat"]),
        Some(b"piped\n"),
        VM_COMMAND_TIMEOUT,
    );
    out.ok();
    assert_eq!(
        out.stdout, "piped\n",
        "stdin reaches the guest and ends: {out}"
    );

    let ps = docker(&d, &["ps", "-aq"]);
    assert_eq!(ps.out(), "", "--rm removed them:\n{ps}");
}

#[test]
fn vm_container_logs_rotate_as_natively() {
    let Some(d) = isolation_daemon() else { return };
    let started = Instant::now();
    vmrun_e2e::log_rotation::rotation_scenario(&d, &["--isolation", "vm"], VM_COMMAND_TIMEOUT);
    eprintln!("log rotation in a VM: {:?}", started.elapsed());
}

#[test]
fn vm_layer_disks_keep_whiteouts_and_are_built_once_per_layer() {
    let Some(d) = isolation_daemon() else { return };
    // A second layer made natively: a deleted file, a deleted directory, a new file.
    docker(
        &d,
        &[
            "run",
            "--name",
            "maker",
            "busybox",
            "sh",
            "-c",
            "rm -rf /etc/passwd /home; echo layered > /marker",
        ],
    )
    .ok();
    docker(&d, &["commit", "maker", "layered:1"]).ok();
    let out = docker(
        &d,
        &[
            "run",
            "--rm",
            "--isolation",
            "vm",
            "layered:1",
            "sh",
            "-c",
            "cat /marker; ls /etc/passwd /home 2>&1 | wc -l; test -e /etc/group && echo kept",
        ],
    );
    out.ok();
    assert_eq!(out.stdout, "layered\n2\nkept\n", "{out}");
    // busybox's layer (built by the first run) is shared: one disk per layer.
    let disks = std::fs::read_dir(d.data_root().join("vm/layers"))
        .map(|r| r.filter_map(Result::ok).count())
        .unwrap_or(0);
    assert_eq!(disks, 2, "one disk per distinct layer");
    docker(&d, &["rm", "maker"]).ok();
}

#[test]
fn vm_detached_logs_exec_top_inspect_stop_start_rm() {
    let Some(d) = isolation_daemon() else { return };
    docker(
        &d,
        &[
            "run",
            "-d",
            "--isolation",
            "vm",
            "--name",
            "v1",
            "busybox",
            "sh",
            "-c",
            "echo started; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done",
        ],
    )
    .ok();
    vmrun_e2e::wait_for(Duration::from_secs(20), "the first log line", || {
        docker(&d, &["logs", "v1"])
            .stdout
            .contains("started")
            .then_some(())
    });

    let exec = docker(
        &d,
        &["exec", "v1", "sh", "-c", "echo in-vm; echo kept > /note"],
    );
    exec.ok();
    assert_eq!(exec.stdout, "in-vm\n", "{exec}");
    docker(&d, &["exec", "v1", "sh", "-c", "exit 9"]).code_is(9);
    let top = docker(&d, &["top", "v1"]);
    top.ok();
    assert!(
        top.stdout.contains("sleep 1") || top.stdout.contains("sh -c"),
        "{top}"
    );

    let info = d.inspect("v1");
    assert_eq!(info["HostConfig"]["Isolation"], "vm", "{info}");
    assert_eq!(info["GraphDriver"]["Name"], "vmrun-vm", "{info}");
    let vm_pid: i32 = vm_pid(&info);
    assert!(
        std::path::Path::new(&format!("/proc/{vm_pid}")).exists(),
        "the VM's monitor runs"
    );

    // `logs -f` follows a running VM container.
    let mut follow = d.docker_cmd(&["logs", "-f", "v1"]);
    follow.stdout(std::process::Stdio::piped());
    let child = follow.spawn().expect("docker logs -f");
    std::thread::sleep(Duration::from_secs(3));
    let stop = docker(&d, &["stop", "-t", "2", "v1"]);
    stop.ok();
    let out = child.wait_with_output().expect("docker logs -f ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tick 3"), "{text}");
    assert_eq!(d.state("v1").as_deref(), Some("exited"));
    // The guest shuts down cleanly (its data disk) just after the exit is recorded.
    vmrun_e2e::wait_for(
        Duration::from_secs(20),
        "the VM to end with its container",
        || (!std::path::Path::new(&format!("/proc/{vm_pid}")).exists()).then_some(()),
    );

    // A fresh VM; the writable layer is on the container's data disk and survives.
    docker(&d, &["start", "v1"]).ok();
    let exec = docker(&d, &["exec", "v1", "cat", "/note"]);
    exec.ok();
    assert_eq!(exec.stdout, "kept\n", "{exec}");
    docker(&d, &["rm", "-f", "v1"]).ok();
    assert_eq!(docker(&d, &["ps", "-aq"]).out(), "");
}

#[test]
fn vm_containers_and_a_native_one_side_by_side() {
    let Some(d) = isolation_daemon() else { return };
    for name in ["va", "vb"] {
        run_sleeping_vm(&d, name);
    }
    docker(
        &d,
        &["run", "-d", "--name", "native", "busybox", "sleep", "300"],
    )
    .ok();
    let boot_id = |name: &str| {
        let out = docker(
            &d,
            &["exec", name, "cat", "/proc/sys/kernel/random/boot_id"],
        );
        out.ok();
        out.out().to_string()
    };
    let (a, b, n) = (boot_id("va"), boot_id("vb"), boot_id("native"));
    let host = host_file("/proc/sys/kernel/random/boot_id");
    assert_eq!(n, host, "the native container shares the host's kernel");
    assert_ne!(a, host);
    assert_ne!(b, host);
    assert_ne!(a, b, "each VM container has its own kernel");
    let ps = docker(&d, &["ps", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = ps.stdout.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["native", "va", "vb"], "{ps}");
    docker(&d, &["rm", "-f", "va", "vb", "native"]).ok();
}

#[test]
fn a_vm_that_dies_marks_its_container_exited_with_the_reason() {
    let Some(d) = isolation_daemon() else { return };
    run_sleeping_vm(&d, "doomed");
    let info = d.inspect("doomed");
    let vm_pid: i32 = vm_pid(&info);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(vm_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("killing the VM's monitor");
    d.wait_state("doomed", "exited", Duration::from_secs(20));
    let info = d.inspect("doomed");
    let state = &info["State"];
    assert_ne!(state["ExitCode"], 0, "{state}");
    let error = state["Error"].as_str().unwrap_or_default();
    assert!(error.contains("VM"), "{state}");
    // The daemon carries on.
    docker(&d, &["run", "--rm", "--isolation", "vm", "busybox", "true"]).ok();
    docker(&d, &["rm", "doomed"]).ok();
}

#[test]
fn a_daemon_that_dies_leaves_no_vm_and_finds_its_container_exited() {
    let Some(mut d) = isolation_daemon() else {
        return;
    };
    run_sleeping_vm(&d, "orphan");
    let info = d.inspect("orphan");
    let vm_pid = info["GraphDriver"]["Data"]["VmPid"]
        .as_str()
        .unwrap_or_else(|| panic!("no VmPid: {info}"))
        .to_string();
    d.kill9();
    vmrun_e2e::wait_process_gone(
        vm_pid,
        Duration::from_secs(10),
        "the VM to die with the daemon",
    );
    d.restart();
    let info = d.inspect("orphan");
    let state = &info["State"];
    assert_eq!(state["Status"], "exited", "{state}");
    assert_eq!(state["ExitCode"], 255, "{state}");
    assert!(
        state["Error"].as_str().unwrap_or_default().contains("VM"),
        "{state}"
    );
    // It starts again, in a fresh VM.
    docker(&d, &["start", "orphan"]).ok();
    docker(&d, &["rm", "-f", "orphan"]).ok();
}

#[test]
fn a_hung_guest_fails_commands_at_the_agent_deadline() {
    let Some(mut d) = isolation_daemon() else {
        return;
    };
    d.restart_with(&["--vm-agent-timeout", "3"]);
    run_sleeping_vm(&d, "frozen");
    let info = d.inspect("frozen");
    let vm_pid: i32 = vm_pid(&info);
    let monitor = nix::unistd::Pid::from_raw(vm_pid);
    nix::sys::signal::kill(monitor, nix::sys::signal::Signal::SIGSTOP).expect("stopping the VM");
    let started = Instant::now();
    let top = docker(&d, &["top", "frozen"]);
    let waited = started.elapsed();
    nix::sys::signal::kill(monitor, nix::sys::signal::Signal::SIGCONT).expect("resuming the VM");
    assert!(!top.success(), "{top}");
    assert!(
        top.stderr.contains("did not answer within 3s"),
        "the reason names the deadline: {top}"
    );
    eprintln!("docker top of a hung guest failed after {waited:?}");
    // Resumed, it answers again.
    let top = docker(&d, &["top", "frozen"]);
    assert!(top.success() && top.stdout.contains("sleep"), "{top}");
    docker(&d, &["rm", "-f", "frozen"]).ok();
}

/// The last number a counting container printed.
fn last_count(d: &Daemon, name: &str) -> u64 {
    let logs = docker(d, &["logs", "--tail", "1", name]);
    logs.ok();
    logs.stdout.trim().parse().unwrap_or(0)
}

#[test]
fn vm_pause_unpause_and_update() {
    let Some(d) = isolation_daemon() else {
        return;
    };
    docker(
        &d,
        &[
            "run",
            "-d",
            "--isolation",
            "vm",
            "--name",
            "vmpause",
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done",
        ],
    )
    .ok();
    std::thread::sleep(Duration::from_secs(1));
    docker(&d, &["pause", "vmpause"]).ok();
    let state = docker(
        &d,
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}}",
            "vmpause",
        ],
    );
    assert_eq!(state.stdout.trim(), "paused true", "{state}");
    // Frozen in the guest: the count stands still. (The log reaches the host a little
    // after the guest wrote it: let the lines printed before the pause arrive first.)
    std::thread::sleep(Duration::from_secs(1));
    let before = last_count(&d, "vmpause");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        last_count(&d, "vmpause"),
        before,
        "the count moved while paused"
    );
    docker(&d, &["unpause", "vmpause"]).ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    while last_count(&d, "vmpause") <= before {
        assert!(
            Instant::now() < deadline,
            "the count did not move after unpause"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // `docker update` reaches the guest's cgroup: the limit shows in stats.
    docker(
        &d,
        &[
            "update",
            "--memory",
            "64m",
            "--memory-swap",
            "64m",
            "vmpause",
        ],
    )
    .ok();
    let stats = docker(
        &d,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.MemUsage}}",
            "vmpause",
        ],
    );
    assert!(stats.stdout.contains("/ 64MiB"), "{stats}");
    docker(&d, &["rm", "-f", "vmpause"]).ok();
}
