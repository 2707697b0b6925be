//! The containerd shim v2 `containerd-shim-vmrun-v2` (runtime `io.containerd.vmrun.v2`)
//! driven by a private containerd 1.6 through `ctr run --runtime io.containerd.vmrun.v2`:
//! each task runs in a microVM of its own (QEMU TCG on this host, our VMM on hardware
//! KVM), booted from the guest kernel and agent initramfs the test hands containerd
//! (`VMRUN_VM_KERNEL`/`VMRUN_VM_INITRD`, inherited by the shim).
//!
//! Needs root, `containerd`, a VM monitor, the kernel-config kernel and the static agent.
//! Run: `cargo build -p vmrun-containerd-shim && cargo test -p vmrun-e2e --test containerd_shim`.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use vmrun_e2e::oci::{host_boot_id, shim_guest_assets, Containerd, CTR_BUSYBOX};
use vmrun_e2e::{wait_for, CmdOutput};

/// Deadline of a `ctr` command that boots a VM (TCG on a loaded 2-core host).
const VM_CTR_TIMEOUT: Duration = Duration::from_secs(180);
const RUNTIME: &str = "io.containerd.vmrun.v2";

/// One containerd and its VMs at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A containerd whose shims boot the test's kernel and initramfs, or `None` after saying
/// why not.
fn containerd() -> Option<Containerd> {
    let (kernel, initrd) = shim_guest_assets()?;
    match Containerd::start_with_env(&[("VMRUN_VM_KERNEL", &kernel), ("VMRUN_VM_INITRD", &initrd)])
    {
        Ok(c) => Some(c),
        Err(why) => {
            vmrun_test_skip::report(why);
            None
        }
    }
}

/// `ctr run --runtime io.containerd.vmrun.v2 extra... busybox id cmd...`; `None` (after
/// reporting) where this host has no VM monitor.
fn ctr_run(ctd: &Containerd, extra: &[&str], id: &str, cmd: &[&str]) -> Option<CmdOutput> {
    let mut args = vec!["run", "--runtime", RUNTIME];
    args.extend(extra);
    args.extend([CTR_BUSYBOX, id]);
    args.extend(cmd);
    let out = ctd.ctr_within(VM_CTR_TIMEOUT, &args);
    if out.stderr.contains("no VM monitor on this host") {
        vmrun_test_skip::report(out.stderr.trim());
        return None;
    }
    Some(out)
}

#[test]
fn ctr_run_runs_the_task_in_its_own_microvm() {
    let _serial = serial();
    let Some(ctd) = containerd() else {
        return;
    };
    let started = std::time::Instant::now();
    let Some(out) = ctr_run(
        &ctd,
        &["--rm"],
        "vm1",
        &[
            "sh",
            "-c",
            "cat /proc/sys/kernel/random/boot_id; echo to stderr >&2; exit 3",
        ],
    ) else {
        return;
    };
    eprintln!("ctr run --rm in a microVM: {:?}", started.elapsed());
    out.code_is(3);
    let guest_boot_id = out.out();
    assert_eq!(guest_boot_id.len(), 36, "not a boot id: {out}");
    assert_ne!(
        guest_boot_id,
        host_boot_id(),
        "the task ran on the host's kernel"
    );
    assert_eq!(out.stderr.trim(), "to stderr", "{out}");
    // `--rm` deleted the task and container; the shim and its VM are gone.
    assert_eq!(ctd.ctr(&["task", "ls", "-q"]).ok().stdout.trim(), "");
    assert_eq!(ctd.ctr(&["container", "ls", "-q"]).ok().stdout.trim(), "");
    wait_for(Duration::from_secs(30), "the shim to exit", || {
        let left = vmrun_e2e::cleanup::pids_mentioning("containerd-shim-vmrun-v2")
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains(&ctd.namespace))
            })
            .count();
        (left == 0).then_some(())
    });
}

#[test]
fn ctr_task_exec_and_kill_in_the_vm() {
    let _serial = serial();
    let Some(ctd) = containerd() else {
        return;
    };
    let Some(run) = ctr_run(&ctd, &["-d"], "vm2", &["sleep", "1000"]) else {
        return;
    };
    run.ok();
    assert_eq!(ctd.task_status("vm2").as_deref(), Some("RUNNING"));
    let exec = ctd.ctr_within(
        VM_CTR_TIMEOUT,
        &[
            "task",
            "exec",
            "--exec-id",
            "e1",
            "vm2",
            "sh",
            "-c",
            "cat /proc/sys/kernel/random/boot_id; exit 5",
        ],
    );
    exec.code_is(5);
    assert_ne!(
        exec.out(),
        host_boot_id(),
        "the exec ran on the host: {exec}"
    );
    assert_eq!(exec.out().len(), 36, "{exec}");
    ctd.ctr(&["task", "kill", "-s", "KILL", "vm2"]).ok();
    wait_for(Duration::from_secs(30), "the task to stop", || {
        (ctd.task_status("vm2").as_deref() == Some("STOPPED")).then_some(())
    });
    ctd.ctr_within(VM_CTR_TIMEOUT, &["task", "delete", "vm2"])
        .ok();
    ctd.ctr(&["container", "rm", "vm2"]).ok();
}

#[test]
fn tasks_of_one_pod_sandbox_share_its_vm() {
    let _serial = serial();
    let Some(ctd) = containerd() else {
        return;
    };
    // What containerd's CRI plugin puts on every container of a pod.
    let pod = "--annotation=io.kubernetes.cri.sandbox-id=pod1";
    let Some(first) = ctr_run(&ctd, &["-d", pod], "pause1", &["sleep", "1000"]) else {
        return;
    };
    first.ok();
    let second = ctd.ctr_within(
        VM_CTR_TIMEOUT,
        &[
            "run",
            "--runtime",
            RUNTIME,
            "--rm",
            pod,
            CTR_BUSYBOX,
            "app1",
            "sh",
            "-c",
            "cat /proc/sys/kernel/random/boot_id; ls /proc | grep -c '^[0-9]'",
        ],
    );
    second.ok();
    let mut lines = second.stdout.lines();
    let app_boot_id = lines.next().unwrap_or_default().to_string();
    let in_first = ctd.ctr_within(
        VM_CTR_TIMEOUT,
        &[
            "task",
            "exec",
            "--exec-id",
            "e1",
            "pause1",
            "cat",
            "/proc/sys/kernel/random/boot_id",
        ],
    );
    assert_eq!(in_first.ok().out(), app_boot_id, "two VMs for one pod");
    assert_ne!(app_boot_id, host_boot_id());
    // Its own PID namespace within the VM: sh, ls, grep at most.
    let pids: usize = lines
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(99);
    assert!(pids <= 3, "the second task sees {pids} processes: {second}");
    // One shim serves the pod.
    let shims = vmrun_e2e::cleanup::pids_mentioning("containerd-shim-vmrun-v2")
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.contains(&ctd.namespace))
        })
        .count();
    assert_eq!(shims, 1, "one shim per sandbox");
    ctd.ctr(&["task", "kill", "-s", "KILL", "pause1"]).ok();
    wait_for(Duration::from_secs(30), "the first task to stop", || {
        (ctd.task_status("pause1").as_deref() == Some("STOPPED")).then_some(())
    });
    ctd.ctr_within(VM_CTR_TIMEOUT, &["task", "delete", "pause1"])
        .ok();
}

#[test]
fn ctr_run_with_a_terminal() {
    let _serial = serial();
    if !vmrun_e2e::has_tool("script") {
        vmrun_test_skip::report("`script` not installed (apt-get install util-linux)");
        return;
    }
    let Some(ctd) = containerd() else {
        return;
    };
    let cmd = ctd.ctr_cmd(&[
        "run",
        "--rm",
        "-t",
        "--runtime",
        RUNTIME,
        CTR_BUSYBOX,
        "tty1",
        "sh",
        "-c",
        "tty; exit 2",
    ]);
    let out = vmrun_e2e::terminal::command_under_script(&cmd, VM_CTR_TIMEOUT);
    if out.stdout.contains("no VM monitor on this host") {
        vmrun_test_skip::report(out.stdout.trim());
        return;
    }
    out.code_is(2);
    assert!(
        out.stdout.contains("/dev/pts/"),
        "no terminal in the VM: {out}"
    );
}

/// containerd's JSON of `ctr task metrics --format json id` (the v2 cgroup metrics).
fn metrics(ctd: &Containerd, id: &str) -> serde_json::Value {
    let out = ctd.ctr(&["task", "metrics", "--format", "json", id]);
    out.ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("metrics: {e}: {out}"))
}

/// `Task.Update` straight to the shim serving `id` over its ttrpc socket, as containerd
/// sends it for the CRI's UpdateContainerResources (containerd 1.6's `ctr` has no
/// `task update`): the OCI `LinuxResources` in JSON.
fn update_task(ctd: &Containerd, id: &str, resources: serde_json::Value) {
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::{api, Client, TaskClient};
    let address = ctd
        .shim_address(id)
        .unwrap_or_else(|| panic!("no shim address for {id}"));
    let client = TaskClient::new(Client::connect(&address).expect("connecting to the shim"));
    let req = api::UpdateTaskRequest {
        id: id.to_string(),
        resources: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
            value: resources.to_string().into_bytes(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let ctx = containerd_shim_protos::ttrpc::context::with_timeout(60_000_000_000);
    client.update(ctx, &req).expect("Task.Update");
}

#[test]
fn ctr_task_metrics_and_update_reach_the_guest_cgroup() {
    let _serial = serial();
    let Some(ctd) = containerd() else {
        return;
    };
    let limit = 64u64 << 20;
    // ctr's default spec mounts no cgroup file system (the CRI's does): ask for one, to
    // read the container's own cgroup files from inside it.
    let Some(run) = ctr_run(
        &ctd,
        &[
            "-d",
            "--memory-limit",
            &limit.to_string(),
            "--mount",
            "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro",
        ],
        "met1",
        &["sleep", "1000"],
    ) else {
        return;
    };
    run.ok();
    let m = metrics(&ctd, "met1");
    assert_eq!(m["memory"]["usage_limit"], limit, "{m}");
    assert!(m["memory"]["usage"].as_u64().unwrap_or(0) > 0, "{m}");
    assert!(m["pids"]["current"].as_u64().unwrap_or(0) >= 1, "{m}");
    assert!(m["cpu"]["usage_usec"].as_u64().is_some(), "{m}");

    let lower = 48u64 << 20;
    update_task(
        &ctd,
        "met1",
        serde_json::json!({"memory": {"limit": lower}, "cpu": {"quota": 50000, "period": 100000}}),
    );
    assert_eq!(metrics(&ctd, "met1")["memory"]["usage_limit"], lower);
    // The container's own cgroup in the guest says so too.
    let files = ctd.ctr_within(
        VM_CTR_TIMEOUT,
        &[
            "task",
            "exec",
            "--exec-id",
            "e1",
            "met1",
            "cat",
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/cpu.max",
        ],
    );
    files.ok();
    assert_eq!(files.stdout, format!("{lower}\n50000 100000\n"), "{files}");
    ctd.ctr(&["task", "kill", "-s", "KILL", "met1"]).ok();
    wait_for(Duration::from_secs(30), "the task to stop", || {
        (ctd.task_status("met1").as_deref() == Some("STOPPED")).then_some(())
    });
    ctd.ctr_within(VM_CTR_TIMEOUT, &["task", "delete", "met1"])
        .ok();
}

#[test]
fn an_oom_kill_in_the_guest_is_a_tasks_oom_event_and_137() {
    let _serial = serial();
    let Some(ctd) = containerd() else {
        return;
    };
    let mut events = ctd
        .ctr_cmd(&["events"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ctr events");
    let Some(out) = ctr_run(
        &ctd,
        &["--rm", "--memory-limit", &(32u64 << 20).to_string()],
        "oom1",
        &["tail", "/dev/zero"],
    ) else {
        let _ = events.kill();
        let _ = events.wait();
        return;
    };
    // Events reach `ctr events` asynchronously.
    std::thread::sleep(Duration::from_secs(1));
    let _ = events.kill();
    let mut seen = String::new();
    if let Some(mut stdout) = events.stdout.take() {
        use std::io::Read as _;
        let _ = stdout.read_to_string(&mut seen);
    }
    let _ = events.wait();
    out.code_is(137);
    let oom = seen
        .lines()
        .find(|l| l.contains("/tasks/oom"))
        .unwrap_or_else(|| panic!("no /tasks/oom event:\n{seen}"));
    assert!(oom.contains("oom1"), "{oom}");
    let exit = seen.lines().position(|l| l.contains("/tasks/exit"));
    let oom_at = seen.lines().position(|l| l.contains("/tasks/oom"));
    assert!(
        oom_at < exit,
        "the OOM event comes before the exit:\n{seen}"
    );
}

#[test]
fn ctr_task_kill_all_reaches_the_execs() {
    let _serial = serial();
    let Some(ctd) = containerd() else {
        return;
    };
    let Some(run) = ctr_run(&ctd, &["-d"], "all1", &["sleep", "1000"]) else {
        return;
    };
    run.ok();
    // A foreground exec, its `ctr` waiting for its exit.
    let mut exec = ctd
        .ctr_cmd(&["task", "exec", "--exec-id", "e1", "all1", "sleep", "1000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ctr task exec");
    wait_for(VM_CTR_TIMEOUT, "the exec to run", || {
        let ps = ctd.ctr(&["task", "ps", "all1"]);
        (ps.stdout.lines().skip(1).count() == 2).then_some(())
    });
    // SIGTERM without `--all` goes to the init alone, which ignores it (PID 1 of its
    // namespace without a handler): the exec runs on.
    ctd.ctr(&["task", "kill", "-s", "TERM", "all1"]).ok();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        exec.try_wait().expect("the exec's ctr").is_none(),
        "a kill without --all ended the exec"
    );
    ctd.ctr(&["task", "kill", "--all", "-s", "TERM", "all1"])
        .ok();
    let status = wait_for(Duration::from_secs(60), "the exec to end", || {
        exec.try_wait().expect("the exec's ctr")
    });
    assert_eq!(status.code(), Some(128 + 15), "the exec's exit");
    assert_eq!(ctd.task_status("all1").as_deref(), Some("RUNNING"));
    ctd.ctr(&["task", "kill", "-a", "-s", "KILL", "all1"]).ok();
    wait_for(Duration::from_secs(30), "the task to stop", || {
        (ctd.task_status("all1").as_deref() == Some("STOPPED")).then_some(())
    });
    ctd.ctr_within(VM_CTR_TIMEOUT, &["task", "delete", "all1"])
        .ok();
}
