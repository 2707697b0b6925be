//! Daemons whose containers run in microVMs, for the VM tests: one that runs per-container
//! VMs (`--isolation vm`) and one in shared-VM mode (`--mode vm`), each `None` after
//! reporting, as a visible skip, why this host cannot run it; and commands with a deadline
//! long enough for a VM to boot under TCG on a loaded host.

use std::time::Duration;

use crate::{require_root, require_tool, run_with_timeout, CmdOutput, Daemon};

/// Deadline of a command that may boot a VM.
pub const VM_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The shared VM's flags in tests (a small VM: TCG guests are slow to fill).
pub const SHARED_VM_MODE: [&str; 6] = ["--mode", "vm", "--vm-memory", "512", "--vm-disk-size", "4"];

/// `docker args...` with [`VM_COMMAND_TIMEOUT`].
pub fn docker(d: &Daemon, args: &[&str]) -> CmdOutput {
    run_with_timeout(d.docker_cmd(args), None, VM_COMMAND_TIMEOUT)
}

/// `vmrun args...` with [`VM_COMMAND_TIMEOUT`].
pub fn vmrun(d: &Daemon, args: &[&str]) -> CmdOutput {
    run_with_timeout(d.vmrun_cmd(args), None, VM_COMMAND_TIMEOUT)
}

/// A native-mode daemon that can also run containers in their own VMs, or `None`.
pub fn isolation_daemon() -> Option<Daemon> {
    if !require_root() || !require_tool("docker") {
        return None;
    }
    let d = Daemon::start();
    let out = docker(&d, &["run", "--rm", "--isolation", "vm", "busybox", "true"]);
    if out.stderr.contains("is not available on this daemon") {
        vmrun_test_skip::report(format_args!(
            "VM isolation unavailable: {}",
            out.stderr.trim()
        ));
        return None;
    }
    out.ok();
    Some(d)
}

/// A daemon in shared-VM mode ([`SHARED_VM_MODE`]), or `None`.
pub fn shared_vm_daemon() -> Option<Daemon> {
    if !require_root() || !require_tool("docker") {
        return None;
    }
    // Ask a native-mode daemon first: a `--mode vm` daemon without a VM will not start.
    let mut d = Daemon::start();
    let status = vmrun(&d, &["vm", "status"]);
    if !status.success() {
        vmrun_test_skip::report(format_args!("no shared VM: {}", status.stderr.trim()));
        return None;
    }
    d.restart_with(&SHARED_VM_MODE);
    Some(d)
}

/// How often daemon `d` copied a layer into the shared VM (from its log).
pub fn layer_copies(d: &Daemon) -> usize {
    std::fs::read_to_string(d.log_path())
        .unwrap_or_default()
        .matches("copying a layer into the shared VM")
        .count()
}

/// Makes the binaries in `dir` (shipped into the nested KVM host) the ones the test's
/// programs find: `VMRUN_BIN_DIR` names it and it goes first on `PATH`.
pub fn use_binaries_in(dir: &std::path::Path) {
    std::env::set_var("VMRUN_BIN_DIR", dir);
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::set_var("PATH", format!("{}:{path}", dir.display()));
}

/// What every end-to-end test through our own VMM carries into the nested KVM host:
/// `vmrun-vmm`, the guest kernel (`vmlinux`), the agent initramfs (`initramfs.cpio`) and
/// the busybox image (`busybox.tar`), with a limit of 480 s; a skip when one is missing.
/// Each test adds what else it runs.
pub fn own_vmm_inputs() -> Result<vmrun_kvmhost::NestedInputs, vmrun_kvmhost::Skip> {
    use vmrun_kvmhost::Skip;
    let vmm = crate::bin_dir().join("vmrun-vmm");
    if !vmm.is_file() {
        return Err(Skip::new(
            "vmrun-vmm is not built (cargo build -p vmrun-vmm)",
        ));
    }
    let kernel = vmrun_vmtest::guest_kernel().map_err(|s| Skip::new(s.0))?;
    let initrd = vmrun_vmtest::agent_initramfs().map_err(|s| Skip::new(s.0))?;
    Ok(vmrun_kvmhost::NestedInputs::new()
        .binary("vmrun-vmm", vmm)
        .file("vmlinux", kernel)
        .file("initramfs.cpio", initrd)
        .file("busybox.tar", crate::busybox_tar())
        .timeout(Duration::from_secs(480)))
}

/// Gives the VMs this test's programs boot 240 s to their agent's welcome
/// (`VMRUN_VM_BOOT_TIMEOUT`, inherited by daemons, containerd and its shims), not the
/// default 60: under our own VMM in the nested KVM host a boot took 40 to over 60 s on a
/// loaded 2-core machine.
pub fn allow_slow_boots() {
    std::env::set_var("VMRUN_VM_BOOT_TIMEOUT", "240");
}
