//! The daemon's VM backend choice (`--vm-backend auto|vmm|qemu`): reported in
//! `GET /info`, and an explicit choice this host cannot run stops the daemon at
//! start with the reason, before it creates anything.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vmrun_e2e::{api_request, bin_dir, require_root, run_with_timeout, Daemon, DaemonOptions};

fn is_pvm_host() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

#[test]
fn info_reports_the_vm_backend_and_why_not_ours() {
    if !require_root() {
        return;
    }
    let daemon = Daemon::start_with(DaemonOptions {
        load_busybox: false,
        extra_args: vec!["--vm-backend".into(), "auto".into()],
        ..DaemonOptions::default()
    });
    let info = api_request(
        &daemon.socket(),
        "GET",
        "/info",
        None,
        Duration::from_secs(10),
    )
    .json();
    let vm = &info["VmBackend"];
    assert_eq!(vm["Choice"], "auto", "{vm}");
    let kvm = vm["Kvm"].as_str().unwrap_or_default();
    match vm["Backend"].as_str() {
        Some("vmm") => assert_eq!(kvm, "hardware", "{vm}"),
        Some("qemu") => {}
        Some(other) => panic!("unknown backend {other}: {vm}"),
        None => assert!(
            vm["Unavailable"].as_str().is_some_and(|w| !w.is_empty()),
            "no backend and no reason: {vm}"
        ),
    }
    if is_pvm_host() {
        assert!(kvm.starts_with("pvm: "), "{vm}");
        assert_ne!(
            vm["Backend"], "vmm",
            "our VMM cannot boot Linux on PVM: {vm}"
        );
    }
    let out = daemon.vmrun(&["info"]);
    let line = format!(" VM Backend: {}", vm["Backend"].as_str().unwrap_or("none"));
    assert!(
        out.stdout.contains(&line),
        "`vmrun info` lacks {line:?}:\n{}",
        out.stdout
    );
    let log = std::fs::read_to_string(daemon.log_path()).unwrap_or_default();
    assert!(
        log.contains("VM backend"),
        "the choice is not logged:\n{log}"
    );
}

/// Runs vmrund with `args` in a fresh directory; returns (exit code, stderr, dir).
fn vmrund_fails(args: &[&str]) -> (i32, String, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("vmb")
        .tempdir_in("/tmp")
        .unwrap();
    let mut cmd = Command::new(bin_dir().join("vmrund"));
    cmd.args(args)
        .arg("--host")
        .arg(dir.path().join("d.sock"))
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("run"))
        .arg("--bridge")
        .arg("vmb-none");
    let out = run_with_timeout(cmd, None, Duration::from_secs(30));
    (out.code, out.stderr, dir)
}

#[test]
fn an_unknown_backend_is_refused_by_name() {
    if !require_root() {
        return;
    }
    let (code, stderr, _dir) = vmrund_fails(&["--vm-backend", "kata"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--vm-backend") && stderr.contains("\"kata\""),
        "{stderr}"
    );
}

#[test]
fn our_vmm_on_a_host_without_hardware_kvm_stops_the_daemon_cleanly() {
    if !require_root() {
        return;
    }
    if !is_pvm_host() && Path::new("/dev/kvm").exists() {
        vmrun_test_skip::report(format_args!(
            "this host may have hardware KVM, where --vm-backend vmm is valid"
        ));
        return;
    }
    let (code, stderr, dir) = vmrund_fails(&["--vm-backend", "vmm"]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("vmm"), "{stderr}");
    assert!(
        stderr.contains("PVM") || stderr.contains("/dev/kvm"),
        "the reason is missing: {stderr}"
    );
    for left in ["d.sock", "data", "run"] {
        assert!(!dir.path().join(left).exists(), "{left} was left behind");
    }
}
