//! The containerd shim asked for no VM: runtime `io.containerd.vmrun-native.v2` (the
//! same binary under the name `containerd-shim-vmrun-native-v2`, a link the test makes on
//! containerd's `PATH` as the installer does) and the annotation
//! `io.vmrun.isolation=none` on the VM runtime. The task is a native container on this
//! host, made by vmrun's agent run as a host process (runtime library + `vmrun-shim`).
//!
//! Needs root and `containerd`; no VM monitor, kernel or initramfs.
//! Run: `cargo build -p vmrun-containerd-shim -p vmrun-shim && cargo test -p vmrun-e2e --test containerd_shim_native`.

use std::path::Path;
use std::time::Duration;

use vmrun_e2e::oci::{host_boot_id, shim_binary, vmrun_shim_binary, Containerd, CTR_BUSYBOX};
use vmrun_e2e::{require_root, wait_for};

const NATIVE: &str = "io.containerd.vmrun-native.v2";
const VM: &str = "io.containerd.vmrun.v2";

/// A containerd with `containerd-shim-vmrun-native-v2` on its PATH, or `None` after
/// saying why not.
fn containerd(links: &Path) -> Option<Containerd> {
    if !require_root() {
        return None;
    }
    let shim = shim_binary();
    vmrun_shim_binary();
    std::os::unix::fs::symlink(&shim, links.join("containerd-shim-vmrun-native-v2"))
        .expect("linking the native runtime's name");
    match Containerd::start_with_path_and_env(&[links], &[]) {
        Ok(c) => Some(c),
        Err(why) => {
            vmrun_test_skip::report(why);
            None
        }
    }
}

#[test]
fn the_native_runtime_runs_tasks_on_the_host() {
    let links = tempfile::tempdir().expect("tempdir");
    let Some(ctd) = containerd(links.path()) else {
        return;
    };
    let started = std::time::Instant::now();
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        NATIVE,
        CTR_BUSYBOX,
        "n1",
        "sh",
        "-c",
        "cat /proc/sys/kernel/random/boot_id; echo to stderr >&2; exit 3",
    ]);
    eprintln!("ctr run --rm natively: {:?}", started.elapsed());
    out.code_is(3);
    assert_eq!(out.out(), host_boot_id(), "not the host's kernel: {out}");
    assert_eq!(out.stderr.trim(), "to stderr", "{out}");
    assert_eq!(ctd.ctr(&["task", "ls", "-q"]).ok().stdout.trim(), "");

    // The annotation on the VM runtime asks for the same.
    ctd.ctr(&[
        "run",
        "-d",
        "--runtime",
        VM,
        "--annotation",
        "io.vmrun.isolation=none",
        CTR_BUSYBOX,
        "n2",
        "sleep",
        "1000",
    ])
    .ok();
    assert_eq!(ctd.task_status("n2").as_deref(), Some("RUNNING"));
    // The pid containerd holds is the process itself, on this host.
    let ls = ctd.ctr(&["task", "ls"]);
    let pid = ls
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some("n2"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("n2 not listed: {ls}"))
        .to_string();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert_eq!(
        cmdline, b"sleep\x001000\x00",
        "pid {pid} is not the task's process"
    );
    let exec = ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "n2",
        "sh",
        "-c",
        "cat /proc/sys/kernel/random/boot_id; exit 5",
    ]);
    exec.code_is(5);
    assert_eq!(exec.out(), host_boot_id(), "{exec}");
    let m = ctd.ctr(&["task", "metrics", "--format", "json", "n2"]);
    m.ok();
    let m: serde_json::Value = serde_json::from_str(&m.stdout).expect("metrics JSON");
    assert!(m["pids"]["current"].as_u64().unwrap_or(0) >= 1, "{m}");
    ctd.ctr(&["task", "kill", "-s", "KILL", "n2"]).ok();
    wait_for(Duration::from_secs(30), "the task to stop", || {
        (ctd.task_status("n2").as_deref() == Some("STOPPED")).then_some(())
    });
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() != cmdline,
        "the killed process lives on"
    );
    ctd.ctr(&["task", "delete", "n2"]).ok();
    ctd.ctr(&["container", "rm", "n2"]).ok();
    // The shim and its agent end with the last task.
    wait_for(Duration::from_secs(30), "the shim to exit", || {
        let left = vmrun_e2e::cleanup::pids_mentioning("containerd-shim-vmrun")
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains(&ctd.namespace) || c.contains("--vmrun-host-agent"))
            })
            .count();
        (left == 0).then_some(())
    });
}
