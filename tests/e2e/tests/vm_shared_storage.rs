//! The shared VM's storage (`vmrund --mode vm`): named volumes on its data disk, new
//! volumes filled from the image in the guest as natively, image layers taken off the
//! disk when their images go, and the data disk grown by a larger configured size.
//!
//! Needs root, the docker CLI, a VM backend (QEMU + vhost-device-vsock), the guest kernel
//! and the agent initramfs; skips, saying which, when the daemon has no shared VM.

use std::time::{Duration, Instant};

use vmrun_e2e::vm::{docker, layer_copies, shared_vm_daemon, vmrun, SHARED_VM_MODE};
use vmrun_e2e::{require_tool, Daemon};

#[test]
fn shared_vm_named_volumes_live_on_its_data_disk() {
    let Some(d) = shared_vm_daemon() else { return };
    docker(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f",
        ],
    )
    .ok();
    // Shared by another container, and across a VM restart.
    vmrun(&d, &["vm", "stop"]).ok();
    let read = docker(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "data:/data:ro",
            "busybox",
            "cat",
            "/data/f",
        ],
    );
    read.ok();
    assert_eq!(read.stdout, "kept\n", "{read}");
    docker(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "data:/data:ro",
            "busybox",
            "touch",
            "/data/g",
        ],
    )
    .code_is(1);
    // Host directories are shared into the VM (`vm_shares.rs`); a single file cannot be:
    // refused, naming the path.
    let host = docker(
        &d,
        &["run", "--rm", "-v", "/etc/hostname:/h", "busybox", "true"],
    );
    assert!(!host.success(), "{host}");
    assert!(
        host.stderr.contains("/etc/hostname: only directories"),
        "{host}"
    );
    // `volume rm` removes the data in the VM too.
    docker(&d, &["volume", "rm", "data"]).ok();
    let fresh = docker(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "busybox",
            "sh",
            "-c",
            "ls /data | wc -l",
        ],
    );
    fresh.ok();
    assert_eq!(fresh.stdout.trim(), "0", "{fresh}");
    docker(&d, &["volume", "rm", "data"]).ok();
}

/// A volume filled at a container's first start only: emptied, it stays empty at the next
/// start. The outcome of each run, for comparing daemons.
fn filled_once(run: &dyn Fn(&[&str]) -> vmrun_e2e::CmdOutput) -> Vec<String> {
    let script = "stat -c '%a %u %n' /etc/shadow 2>/dev/null || echo none; rm -f /etc/shadow";
    let first = run(&[
        "run",
        "--name",
        "vf-once",
        "--network",
        "none",
        "-v",
        "vf-once:/etc",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let again = run(&["start", "-a", "vf-once"]);
    run(&["rm", "-v", "vf-once"]).ok();
    run(&["volume", "rm", "vf-once"]).ok();
    vec![first.ok().stdout.clone(), again.ok().stdout.clone()]
}

#[test]
fn shared_vm_volumes_start_with_the_images_content_as_natively() {
    let Some(d) = shared_vm_daemon() else { return };
    let started = Instant::now();
    let in_vm = vmrun_e2e::volume_fill::scenario(&|args| docker(&d, args));
    let once_in_vm = filled_once(&|args| docker(&d, args));
    eprintln!(
        "shared VM: {in_vm:#?} {once_in_vm:?} ({:?})",
        started.elapsed()
    );
    assert_eq!(in_vm[0], "anonymous: \"hi\\ndeep\\n1000\\n\"", "{in_vm:?}");
    assert_eq!(once_in_vm, ["600 0 /etc/shadow\n", "none\n"]);
    // One test daemon at a time per lane (`daemon::take_lock`): the shared VM's goes first.
    drop(d);
    let native = vmrun_e2e::Daemon::start();
    assert_eq!(
        in_vm,
        vmrun_e2e::volume_fill::scenario(&|args| native.docker(args))
    );
    assert_eq!(once_in_vm, filled_once(&|args| native.docker(args)));
}

/// Host layer disks of the daemon (`<data-root>/vm/layers/*.ext4`).
fn layer_disks(d: &Daemon) -> Vec<String> {
    let dir = d.data_root().join("vm").join("layers");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".ext4"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn removed_images_take_their_layers_off_the_shared_vm_disk() {
    let Some(d) = shared_vm_daemon() else { return };
    if !require_tool("tar") {
        return;
    }
    // A one-layer image of its own: a static busybox as /bin/busybox.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("bin/busybox")).unwrap();
    let tar = dir.path().join("rootfs.tar");
    let packed = std::process::Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .args(["--owner=0", "--group=0", "--mtime=@0", "-cf"])
        .arg(&tar)
        .arg("bin")
        .status()
        .unwrap();
    assert!(packed.success());
    let import = || {
        docker(&d, &["import", tar.to_str().unwrap(), "lonely:1"]).ok();
    };
    import();
    docker(&d, &["run", "--rm", "busybox", "true"]).ok();
    let before = layer_disks(&d);
    let copies = layer_copies(&d);
    docker(&d, &["run", "--rm", "lonely:1", "/bin/busybox", "true"]).ok();
    assert_eq!(layer_copies(&d), copies + 1, "its layer copied in");
    assert_eq!(layer_disks(&d).len(), before.len() + 1);

    docker(&d, &["rmi", "lonely:1"]).ok();
    vmrun_e2e::wait_for(Duration::from_secs(60), "the layer's removal", || {
        let log = std::fs::read_to_string(d.log_path()).unwrap_or_default();
        (layer_disks(&d) == before && log.contains("removed an unused layer from the shared VM"))
            .then_some(())
    });
    // busybox's layer stays, in use or not; the lonely one is copied again when wanted.
    docker(&d, &["run", "--rm", "busybox", "true"]).ok();
    import();
    docker(&d, &["run", "--rm", "lonely:1", "/bin/busybox", "true"]).ok();
    assert_eq!(
        layer_copies(&d),
        copies + 2,
        "copied again after its removal"
    );
}

/// The 1K-blocks of the container's `/` (the overlay reports its upper file system: the
/// shared VM's data disk).
fn root_kib(d: &Daemon) -> u64 {
    let out = docker(d, &["run", "--rm", "busybox", "df", "-k", "/"]);
    out.ok();
    out.stdout
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {out}"))
}

#[test]
fn a_larger_configured_size_grows_the_shared_vm_data_disk() {
    let Some(mut d) = shared_vm_daemon() else {
        return;
    };
    let before = root_kib(&d);
    assert!((3 << 20..=4 << 20).contains(&before), "{before} KiB");
    docker(
        &d,
        &[
            "run",
            "--name",
            "kept",
            "busybox",
            "sh",
            "-c",
            "echo kept > /kept",
        ],
    )
    .ok();
    vmrun(&d, &["vm", "stop"]).ok();
    d.restart_with(&["--mode", "vm", "--vm-memory", "512", "--vm-disk-size", "5"]);
    let after = root_kib(&d);
    assert!(after > before + (900 << 10), "{before} KiB -> {after} KiB");
    let disk = d.data_root().join("vm/shared/data.ext4");
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 5 << 30);
    // What was on it is still there.
    let out = docker(&d, &["cp", "kept:/kept", "-"]);
    out.ok();
    assert!(out.stdout.contains("kept\n"), "{out}");
    // A smaller size leaves it as it is.
    vmrun(&d, &["vm", "stop"]).ok();
    d.restart_with(&SHARED_VM_MODE);
    assert_eq!(root_kib(&d), after);
    docker(&d, &["rm", "kept"]).ok();
}
