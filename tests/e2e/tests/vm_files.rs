//! `docker cp` and `docker export` of containers in VMs (per-container VMs and the shared
//! VM, QEMU TCG here), through the real docker CLI: the archive tests' cp scenario (a
//! file, a directory, symlinks kept and followed, hard links, a FIFO, owners and modes,
//! `-a`, a directory replaced by a file refused, a missing path; into and out of a
//! running, a created and an exited container) gives the same lines in a VM as natively
//! on the same daemon; symlink and `..` escapes stay inside the container (nothing of the
//! guest's own root is reached); `docker export` lists the container's files, running
//! and stopped; `docker cp` reaches a stopped container's volume and read-only bind, as
//! natively (`vmrun_e2e::cp::stopped_volumes_scenario`).
//!
//! Needs root, the docker CLI, tar, a VM backend, the guest kernel and the agent
//! initramfs; skips, saying which, otherwise.

use std::process::Command;
use std::time::Duration;

use vmrun_e2e::cp::{assert_same_lines, cp_scenario, listing, output, stopped_volumes_scenario};
use vmrun_e2e::vm::{docker, isolation_daemon, shared_vm_daemon, VM_COMMAND_TIMEOUT};
use vmrun_e2e::{require_tool, Daemon};

/// `docker args` with `flags` after `run`/`create`.
fn with_flags(d: &Daemon, args: &[&str], flags: &[&str]) -> Command {
    let mut all: Vec<&str> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        all.push(a);
        if i == 0 && (*a == "run" || *a == "create") {
            all.extend_from_slice(flags);
        }
    }
    d.docker_cmd(&all)
}

/// The cp scenario natively and with `vm_flags`, compared line by line.
fn compare_with_native(d: &Daemon, native_flags: &[&str], vm_flags: &[&str]) {
    let work_native = tempfile::tempdir().unwrap();
    let work_vm = tempfile::tempdir().unwrap();
    let want = cp_scenario(&|a| with_flags(d, a, native_flags), work_native.path());
    let started = std::time::Instant::now();
    let got = cp_scenario(&|a| with_flags(d, a, vm_flags), work_vm.path());
    eprintln!("cp scenario {vm_flags:?}: {:?}", started.elapsed());
    assert_same_lines("vm", &got, "native", &want);
}

/// Escapes through symlinks and `..` stay in the container; export lists its files,
/// running and stopped.
fn escapes_and_export(d: &Daemon, flags: &[&str]) {
    let run = |args: &[&str]| {
        vmrun_e2e::run_with_timeout(with_flags(d, args, flags), None, VM_COMMAND_TIMEOUT)
    };
    run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "esc",
        "busybox",
        "sh",
        "-c",
        "ln -s / /hostroot && ln -s ../../../../.. /up && echo w > /written && touch /ready && sleep 600",
    ])
    .ok();
    vmrun_e2e::wait_for(Duration::from_secs(60), "the container's setup", || {
        run(&["exec", "esc", "test", "-e", "/ready"])
            .success()
            .then_some(())
    });
    for path in [
        "/hostroot/etc/passwd",
        "/up/etc/passwd",
        "/../../../etc/passwd",
    ] {
        let out = run(&["cp", &format!("esc:{path}"), "-"]);
        out.ok();
        assert!(out.stdout.contains("root:x:0:0"), "{path}: {out}");
    }
    // The guest's own root has the agent; the container's does not.
    for path in [
        "/hostroot/bin/vmrun-agent",
        "/../bin/vmrun-agent",
        "/up/init",
    ] {
        let out = run(&["cp", &format!("esc:{path}"), "-"]);
        assert!(!out.success(), "{path} read outside the container: {out}");
        assert!(out.stderr.contains("Could not find the file"), "{out}");
    }
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("marker");
    std::fs::write(&src, "m\n").unwrap();
    for (dest, name) in [
        ("esc:/hostroot/tmp/", "marker"),
        ("esc:/../../tmp/m2", "m2"),
    ] {
        run(&["cp", src.to_str().unwrap(), dest]).ok();
        run(&["exec", "esc", "test", "-f", &format!("/tmp/{name}")]).ok();
    }
    let tar = vmrun_e2e::cp::raw_tar("../../../../tmp/climbed", b"");
    let res = vmrun_e2e::api_request(
        &d.socket(),
        "PUT",
        "/containers/esc/archive?path=/etc",
        Some(&tar),
        VM_COMMAND_TIMEOUT,
    );
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(
        res.text().contains("outside of the destination"),
        "{}",
        res.text()
    );

    // Export: the container's own files, running and stopped.
    for state in ["running", "stopped"] {
        let (ok, tar, err) = output(with_flags(d, &["export", "esc"], flags));
        assert!(ok, "export {state}: {err}");
        let names = listing(&tar);
        for want in [" written", " bin/busybox", " tmp/marker", " hostroot -> /"] {
            assert!(
                names.iter().any(|l| l.ends_with(want)),
                "export {state} lacks{want}: {names:?}"
            );
        }
        assert!(
            !names
                .iter()
                .any(|l| l.contains("vmrun-agent") || l.contains(" proc/1")),
            "{names:?}"
        );
        if state == "running" {
            run(&["stop", "-t", "1", "esc"]).ok();
        }
    }
    run(&["rm", "-f", "esc"]).ok();
}

#[test]
fn cp_and_export_in_container_vms() {
    if !require_tool("tar") {
        return;
    }
    let Some(d) = isolation_daemon() else { return };
    compare_with_native(&d, &[], &["--isolation", "vm"]);
    escapes_and_export(&d, &["--isolation", "vm"]);
    let started = std::time::Instant::now();
    stopped_volumes_scenario(&|a| with_flags(&d, a, &["--isolation", "vm"]), "vm");
    eprintln!("stopped volumes scenario: {:?}", started.elapsed());
}

#[test]
fn cp_and_export_in_the_shared_vm() {
    if !require_tool("tar") {
        return;
    }
    let Some(d) = shared_vm_daemon() else { return };
    compare_with_native(&d, &["--isolation", "native"], &[]);
    escapes_and_export(&d, &[]);
    let started = std::time::Instant::now();
    stopped_volumes_scenario(&|a| with_flags(&d, a, &[]), "shared");
    eprintln!("stopped volumes scenario: {:?}", started.elapsed());
    docker(&d, &["ps", "-a"]).ok();
}
