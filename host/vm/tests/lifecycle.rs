//! Launch failures leave nothing behind; stop() ends a running VM; VMs die with their parent.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmrun_vm::{VmBackend, VmError, VmExit, VmSpec};

#[test]
fn a_missing_kernel_is_a_clear_error_and_starts_nothing() {
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let sock = dir.path().join("v.sock");
    let spec = VmSpec::new(dir.path().join("no-such-vmlinux"), &sock);
    // Validation comes first, so the tool paths need not exist.
    let backends: Vec<Box<dyn VmBackend>> = vec![
        Box::new(vmrun_vm::QemuBackend::new(
            "/nonexistent/qemu",
            "/nonexistent/vhost",
            vmrun_vm::Accel::Tcg,
        )),
        Box::new(vmrun_vm::VmmBackend::new("/nonexistent/vmrun-vmm")),
    ];
    for backend in backends {
        let err = backend.launch(&spec).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                VmError::InvalidSpec {
                    field: "kernel",
                    ..
                }
            ) && text.contains("no-such-vmlinux"),
            "{}: {text}",
            backend.name()
        );
        assert!(!sock.exists());
        assert!(common::pids_mentioning(&sock).is_empty());
    }
}

#[test]
fn a_kernel_qemu_cannot_load_fails_with_its_message_and_leaves_nothing() {
    let backend = match common::qemu_backend() {
        Ok(b) => b,
        Err(why) => return vmrun_test_skip::report(format_args!("{why}")),
    };
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let kernel = dir.path().join("not-a-kernel");
    std::fs::write(&kernel, b"this is not a kernel").unwrap();
    let sock = dir.path().join("v.sock");
    let err = backend.launch(&VmSpec::new(&kernel, &sock)).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            VmError::StartFailed {
                program: "qemu-system-x86_64",
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("qemu"), "{text}");
    assert!(!sock.exists(), "socket left behind: {text}");
    assert!(
        common::wait_gone(&sock, &[], Duration::from_secs(5)).is_empty(),
        "helpers left running"
    );
}

#[test]
fn stop_ends_a_running_vm_and_cleans_up() {
    let (backend, guest) = match common::qemu_backend().and_then(|b| Ok((b, common::guest()?))) {
        Ok(x) => x,
        Err(why) => return vmrun_test_skip::report(format_args!("{why}")),
    };
    let spec = guest.spec();
    let vm = backend.launch(&spec).unwrap();
    assert_eq!(vm.try_wait().unwrap(), None, "the VM is running");
    let qemu = vm.pid();
    assert!(common::alive(qemu), "qemu runs");
    assert_eq!(
        common::pids_mentioning(&spec.vsock_path).len(),
        1,
        "vhost-device-vsock runs"
    );
    let started = Instant::now();
    assert_eq!(vm.stop(Duration::from_secs(5)).unwrap(), VmExit::Stopped);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM was enough"
    );
    assert_eq!(vm.wait().unwrap(), VmExit::Stopped, "wait after stop");
    assert!(common::wait_gone(&spec.vsock_path, &[qemu], Duration::from_secs(5)).is_empty());
    // Connecting to a stopped VM fails at once with the reason.
    let err = vm.connect(1024, Duration::from_secs(10)).unwrap_err();
    assert!(matches!(err, VmError::Stopped(_)), "{err}");
    drop(vm);
    assert!(!spec.vsock_path.exists());
}

/// Runs in a child process (see `a_vm_dies_with_its_parent`): launches a VM, prints its
/// socket path, then waits to be killed.
#[test]
#[ignore = "helper process of a_vm_dies_with_its_parent"]
fn parent_death_helper() {
    let Ok(dir) = std::env::var("VMRUN_VM_TEST_HELPER_DIR") else {
        return;
    };
    let backend = common::qemu_backend().unwrap();
    let guest = common::guest().unwrap();
    let mut spec = guest.spec();
    spec.vsock_path = std::path::Path::new(&dir).join("v.sock");
    let vm = backend.launch(&spec).unwrap();
    println!("launched {}", vm.pid());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_vm_dies_with_its_parent() {
    if let Err(why) = common::qemu_backend().and_then(|_| common::guest().map(|_| ())) {
        return vmrun_test_skip::report(format_args!("{why}"));
    }
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let sock = dir.path().join("v.sock");
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "parent_death_helper", "--nocapture"])
        .env("VMRUN_VM_TEST_HELPER_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(helper.stdout.take().unwrap()).lines();
    let qemu: u32 = lines
        .find_map(|l| l.ok()?.strip_prefix("launched ")?.parse().ok())
        .expect("the helper launched a VM");
    assert!(common::alive(qemu), "qemu runs");
    assert_eq!(
        common::pids_mentioning(&sock).len(),
        1,
        "vhost-device-vsock runs"
    );
    helper.kill().unwrap();
    helper.wait().unwrap();
    let left = common::wait_gone(&sock, &[qemu], Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "still running after the parent died: {left:?}"
    );
}
