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

use vmrun_e2e::oci::{shim_binary, Containerd, CTR_BUSYBOX};
use vmrun_e2e::{require_root, wait_for, CmdOutput};

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
    if !require_root() {
        return None;
    }
    shim_binary();
    let assets =
        vmrun_vmtest::guest_kernel().and_then(|k| Ok((k, vmrun_vmtest::agent_initramfs()?)));
    let (kernel, initrd) = match assets {
        Ok(a) => a,
        Err(why) => {
            vmrun_test_skip::report(why.0);
            return None;
        }
    };
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

fn host_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("reading the host's boot id")
        .trim()
        .to_string()
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
