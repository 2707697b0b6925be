//! The `vmrun-vmm` binary: bad input gives one clear message and exit status 1 with nothing
//! left behind; a halting guest exits 0; SIGTERM stops the VM (143) and removes its socket.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vmrun-vmm");

fn kvm_or_skip() -> bool {
    match vmrun_vmm::pvm::kvm_usable() {
        Ok(()) => true,
        Err(e) => {
            vmrun_test_skip::report(format_args!("{e}"));
            false
        }
    }
}

fn vmm(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_fails_with(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn bad_input_gives_one_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).display().to_string();
    // Every run also asks for a vsock socket: none may be left behind.
    let sock = d("v.sock");
    let with_sock = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--vsock-uds", sock.as_str()]);
        let o = vmm(&all);
        assert!(!Path::new(&sock).exists(), "socket left behind by {args:?}");
        o
    };
    assert_fails_with(&with_sock(&["--kernel", &d("missing")]), "boot.kernel");
    std::fs::write(d("notes.txt"), "not a kernel").unwrap();
    assert_fails_with(
        &with_sock(&["--kernel", &d("notes.txt")]),
        "is not a kernel",
    );
    std::fs::write(d("vmlinux"), b"\x7fELF\x02\x01\x01\x00").unwrap();
    let long = "x".repeat(3000);
    assert_fails_with(
        &with_sock(&["--kernel", &d("vmlinux"), "--cmdline", &long]),
        "boot.cmdline: 3000 bytes is too long",
    );
    assert_fails_with(
        &with_sock(&["--kernel", &d("vmlinux"), "--memory-mib", "100000000"]),
        "does not fit the host",
    );
    assert_fails_with(
        &with_sock(&["--kernel", &d("vmlinux"), "--disk", &d("no-disk.img")]),
        "block_devices[0].path",
    );
    let busy = d("busy.sock");
    let _listener = UnixListener::bind(&busy).unwrap();
    assert_fails_with(
        &vmm(&["--kernel", &d("vmlinux"), "--vsock-uds", &busy]),
        "in use",
    );
    assert!(
        Path::new(&busy).exists(),
        "someone else's socket is left alone"
    );
    assert_fails_with(
        &with_sock(&["--raw-image", &d("missing.bin")]),
        "missing.bin",
    );
}

/// Runs the binary on a spinning raw guest with a vsock socket, inside a private mount
/// namespace after `setup` (a shell command) changed `/dev`; `None` when namespaces are not
/// available here.
fn run_with_dev_changed(setup: &str) -> Option<(Output, bool)> {
    let probe = Command::new("unshare").args(["--mount", "true"]).status();
    if !matches!(probe, Ok(s) if s.success()) {
        vmrun_test_skip::report(format_args!(
            "cannot create a mount namespace (unshare --mount)"
        ));
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("spin.bin");
    std::fs::write(&image, [0xeb, 0xfe]).unwrap();
    let sock = dir.path().join("v.sock");
    let o = Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            &format!(
                "{setup} && exec {BIN} --raw-image {} --vsock-uds {}",
                image.display(),
                sock.display()
            ),
        ])
        .output()
        .unwrap();
    Some((o, sock.exists()))
}

#[test]
fn absent_kvm_is_reported() {
    // A private, empty /dev: no /dev/kvm at all.
    let Some((o, sock_left)) = run_with_dev_changed("mount -t tmpfs none /dev") else {
        return;
    };
    assert_fails_with(&o, "/dev/kvm does not exist");
    assert!(!sock_left, "socket left behind");
}

#[test]
fn unusable_kvm_is_reported() {
    // /dev/kvm is there but is not KVM (/dev/null bound over it).
    let Some((o, sock_left)) = run_with_dev_changed(
        "if [ ! -e /dev/kvm ]; then mount -t tmpfs none /dev && touch /dev/kvm; fi && \
         mount --bind /dev/null /dev/kvm",
    ) else {
        return;
    };
    assert_fails_with(&o, "/dev/kvm is not a KVM device");
    assert!(!sock_left, "socket left behind");
}

#[test]
fn failure_after_binding_the_socket_removes_it() {
    if !kvm_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinux");
    // ELF magic passes validation; linux-loader then rejects the truncated header.
    std::fs::write(&kernel, b"\x7fELF\x02\x01\x01\x00").unwrap();
    let sock = dir.path().join("v.sock");
    let o = vmm(&[
        "--kernel",
        kernel.to_str().unwrap(),
        "--vsock-uds",
        sock.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("loading kernel"), "{}", stderr(&o));
    assert!(!sock.exists(), "socket removed on failure");
}

#[test]
fn halting_guest_exits_zero_with_serial_on_stdout() {
    if !kvm_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("hi.bin");
    // mov dx,0x3f8; mov al,'h'; out dx,al; mov al,'i'; out dx,al; hlt
    std::fs::write(
        &image,
        [0xba, 0xf8, 0x03, 0xb0, b'h', 0xee, 0xb0, b'i', 0xee, 0xf4],
    )
    .unwrap();
    let o = vmm(&["--raw-image", image.to_str().unwrap(), "--memory-mib", "8"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, b"hi");
}

#[test]
fn irqchip_guest_halted_with_interrupts_off_exits_zero() {
    if !kvm_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("halt.bin");
    // mov dx,0x3f8; mov al,'z'; out dx,al; cli; hlt; jmp (back to hlt): what Linux's
    // halt/poweroff without ACPI ends in. KVM handles this HLT; the halt watch notices it.
    std::fs::write(
        &image,
        [0xba, 0xf8, 0x03, 0xb0, b'z', 0xee, 0xfa, 0xf4, 0xeb, 0xfd],
    )
    .unwrap();
    let path = image.to_str().unwrap();
    let o = vmm(&["--raw-image", path, "--raw-irqchip", "--vcpus", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, b"z");
}

#[test]
fn sigterm_stops_the_vm_and_removes_the_socket() {
    if !kvm_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("spin.bin");
    std::fs::write(&image, [0xeb, 0xfe]).unwrap();
    let sock = dir.path().join("v.sock");
    let mut child = Command::new(BIN)
        .args([
            "--raw-image",
            image.to_str().unwrap(),
            "--vsock-uds",
            sock.to_str().unwrap(),
            "--serial",
            "none",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "socket never appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(!sock.exists(), "socket removed on SIGTERM");
}

/// An init (or a daemon that is PID 1 of a container) can launch the VMM: its parent's pid
/// being 1 is not "the parent already exited".
#[test]
fn a_pid1_parent_can_launch_it() {
    if !kvm_or_skip() {
        return;
    }
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        vmrun_test_skip::report(format_args!(
            "cannot create a PID namespace (unshare --pid --fork)"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("hlt.bin");
    std::fs::write(&image, [0xf4]).unwrap();
    // The shell is PID 1 of the new namespace; `; exit $?` keeps it from exec'ing the VMM
    // (which would make the VMM PID 1 itself), and `echo $$` shows the shell is PID 1.
    let script = format!(
        "echo parent=$$; {BIN} --raw-image {} --memory-mib 8 --serial none; exit $?",
        image.display()
    );
    let o = Command::new("unshare")
        .args(["--pid", "--fork", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "parent=1",
        "the launcher is PID 1"
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
}

/// The parent dies (SIGKILL): the VMM gets SIGTERM (`PR_SET_PDEATHSIG`), stops the VM,
/// removes its socket and exits 143. The test process is a child subreaper so that it can
/// read the orphaned VMM's exit status.
#[test]
fn parent_death_stops_the_vm_and_removes_the_socket() {
    use std::io::{BufRead, BufReader};
    if !kvm_or_skip() {
        return;
    }
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer flag and touches no memory.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("spin.bin");
    std::fs::write(&image, [0xeb, 0xfe]).unwrap();
    let sock = dir.path().join("v.sock");
    let script = format!(
        "{BIN} --raw-image {} --vsock-uds {} --serial none & echo $!; wait",
        image.display(),
        sock.display()
    );
    let mut parent = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let vmm_pid: libc::pid_t = line.trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "socket never appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    parent.kill().unwrap();
    parent.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = 0;
    loop {
        // SAFETY: waitpid on a pid that is (now) our child; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(vmm_pid, &mut status, libc::WNOHANG) };
        if r == vmm_pid {
            break;
        }
        assert!(r == 0 || r == -1, "waitpid: {r}");
        assert!(Instant::now() < deadline, "the VMM outlived its parent");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(libc::WIFEXITED(status), "status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 143);
    assert!(!sock.exists(), "socket removed on parent death");
}
