//! The containerd shim v2 under our own VMM: `ctr run --rm --runtime io.containerd.vmrun.v2`
//! with `VMRUN_VM_BACKEND=vmm`, where KVM boots Linux: here on hardware KVM, else inside
//! the nested KVM host (kvm-amd under QEMU TCG, `vmrun-kvmhost`), where this test re-runs
//! itself with Debian's containerd, ctr and runc shim (the harness's prerequisites), our
//! shim, vmrun-vmm, the guest kernel, the agent initramfs and the busybox image.
//!
//! The nested host's root is an initramfs without the overlay module, so containerd
//! there uses its `native` snapshotter (`CONTAINERD_SNAPSHOTTER`, which `ctr` reads):
//! the task's rootfs reaches the shim as a bind mount, and is shared into the VM as ever.

use std::path::Path;
use std::time::Duration;

use vmrun_e2e::oci::{host_boot_id, shim_binary, Containerd, CTR_BUSYBOX};
use vmrun_e2e::require_root;
use vmrun_kvmhost::{nested_test, NestedInputs, Skip};

/// A `ctr run` that boots a VM under nested KVM on TCG takes seconds; this is a hang.
const CTR_TIMEOUT: Duration = Duration::from_secs(240);

fn inputs() -> Result<NestedInputs, Skip> {
    let mut inputs = vmrun_e2e::vm::own_vmm_inputs()?;
    for tool in ["containerd", "ctr", "containerd-shim-runc-v2"] {
        let path = vmrun_e2e::env::which(tool).ok_or_else(|| {
            Skip::new(format!(
                "`{tool}` not installed (apt-get install containerd)"
            ))
        })?;
        inputs = inputs.binary(tool, path);
    }
    Ok(inputs.binary("containerd-shim-vmrun-v2", shim_binary()))
}

#[test]
fn ctr_run_under_our_own_vmm() {
    if !require_root() {
        return;
    }
    nested_test(inputs, |inputs| {
        let bins = inputs
            .path("containerd-shim-vmrun-v2")
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf();
        // containerd, ctr and the shims are found there (and vmrun-vmm next to our shim).
        vmrun_e2e::vm::use_binaries_in(&bins);
        vmrun_e2e::vm::allow_slow_boots();
        if vmrun_kvmhost::inside_outer_host() {
            std::env::set_var("CONTAINERD_SNAPSHOTTER", "native");
        }
        std::env::set_var("VMRUN_E2E_BUSYBOX_TAR", inputs.path("busybox.tar"));
        let ctd = Containerd::start_with_env(&[
            ("VMRUN_VM_KERNEL", inputs.path("vmlinux")),
            ("VMRUN_VM_INITRD", inputs.path("initramfs.cpio")),
            ("VMRUN_VM_BACKEND", Path::new("vmm")),
        ])
        .unwrap_or_else(|why| panic!("containerd: {why}"));
        let started = std::time::Instant::now();
        let out = ctd.ctr_within(
            CTR_TIMEOUT,
            &[
                "run",
                "--rm",
                "--runtime",
                "io.containerd.vmrun.v2",
                CTR_BUSYBOX,
                "own1",
                "sh",
                "-c",
                "cat /proc/sys/kernel/random/boot_id; echo to stderr >&2; exit 3",
            ],
        );
        eprintln!("ctr run --rm under vmrun-vmm: {:?}", started.elapsed());
        out.code_is(3);
        assert_eq!(out.out().len(), 36, "not a boot id: {out}");
        assert_ne!(
            out.out(),
            host_boot_id(),
            "the task ran on the host's kernel"
        );
        assert_eq!(out.stderr.trim(), "to stderr", "{out}");
        // The monitor is our VMM while a task runs, and gone with the task.
        let started = std::time::Instant::now();
        ctd.ctr_within(
            CTR_TIMEOUT,
            &[
                "run",
                "-d",
                "--runtime",
                "io.containerd.vmrun.v2",
                CTR_BUSYBOX,
                "own2",
                "sleep",
                "1000",
            ],
        )
        .ok();
        eprintln!("ctr run -d under vmrun-vmm: {:?}", started.elapsed());
        let vmms = vmrun_e2e::cleanup::pids_mentioning("vmrun-vmm");
        assert_eq!(vmms.len(), 1, "one vmrun-vmm runs the task: {vmms:?}");
        ctd.ctr(&["task", "kill", "-s", "KILL", "own2"]).ok();
        vmrun_e2e::wait_for(Duration::from_secs(60), "the task to stop", || {
            (ctd.task_status("own2").as_deref() == Some("STOPPED")).then_some(())
        });
        ctd.ctr_within(CTR_TIMEOUT, &["task", "delete", "own2"])
            .ok();
        vmrun_e2e::wait_for(Duration::from_secs(30), "the VM to end", || {
            vmrun_e2e::cleanup::pids_mentioning("vmrun-vmm")
                .is_empty()
                .then_some(())
        });
        assert_eq!(ctd.ctr(&["task", "ls", "-q"]).ok().stdout.trim(), "");
    });
}
