//! Shared set-up for the VM backend tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vmrun_vm::{Accel, HostCaps, KvmStatus, QemuBackend, VmSpec, VmmBackend};

/// A guest kernel, the echo initramfs and a private directory.
pub struct Guest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Guest {
    /// A spec with 2 vCPUs booting the echo init, serial into `dir/serial.log`.
    pub fn spec(&self) -> VmSpec {
        let mut spec = VmSpec::new(&self.kernel, self.dir.path().join("v.sock"));
        spec.vcpus = 2;
        spec.memory_mib = 256;
        spec.initrd = Some(self.initrd.clone());
        spec.serial_log = Some(self.serial_path());
        spec
    }

    pub fn serial_path(&self) -> PathBuf {
        self.dir.path().join("serial.log")
    }

    pub fn serial(&self) -> String {
        std::fs::read_to_string(self.serial_path()).unwrap_or_default()
    }

    /// Waits until the echo init says on the console that it listens
    /// ([`vmrun_vmtest::LISTENING_LINE`]): vhost-device-vsock (QEMU's vsock) can leave a
    /// `CONNECT` sent while the guest's vsock driver comes up unanswered for good, and
    /// then every later one too, so hosts connect only after that line (as the daemon does
    /// with the agent's ready line).
    pub fn wait_listening(&self, timeout: std::time::Duration) -> Result<(), String> {
        let deadline = std::time::Instant::now() + timeout;
        while !self.serial().contains(vmrun_vmtest::LISTENING_LINE) {
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "the guest did not say it listens within {timeout:?}; serial:\n{}",
                    self.serial()
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(())
    }
}

/// The kernel + echo initramfs, or the reason to skip.
pub fn guest() -> Result<Guest, String> {
    let kernel = vmrun_vmtest::guest_kernel().map_err(|s| s.0)?;
    let dir = tempfile::Builder::new()
        .prefix("vmt")
        .tempdir_in("/tmp")
        .map_err(|e| e.to_string())?;
    let initrd = vmrun_vmtest::echo_initramfs(dir.path()).map_err(|s| s.0)?;
    Ok(Guest {
        kernel,
        initrd,
        dir,
    })
}

/// The QEMU backend on this host, or the reason to skip.
pub fn qemu_backend() -> Result<QemuBackend, String> {
    let host = HostCaps::detect(None);
    let qemu = host
        .qemu
        .ok_or("qemu-system-x86_64 is not installed (package qemu-system-x86)")?;
    let vhost = host
        .vhost_device_vsock
        .ok_or("vhost-device-vsock not found (installer/tools.sh installs it)")?;
    let accel = if host.kvm == KvmStatus::Hardware {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    Ok(QemuBackend::new(qemu, vhost, accel))
}

/// Our VMM backend, or the reason to skip (PVM, no /dev/kvm, binary not built).
pub fn vmm_backend() -> Result<VmmBackend, String> {
    match vmrun_vm::host::kvm_status() {
        KvmStatus::Hardware => {}
        KvmStatus::Pvm(why) | KvmStatus::Unusable(why) => return Err(why),
    }
    // Test binaries live in target/<profile>/deps; vmrun-vmm in target/<profile>.
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|d| d.join("vmrun-vmm")));
    match beside.filter(|p| p.is_file()) {
        Some(bin) => Ok(VmmBackend::new(bin)),
        None => Err("vmrun-vmm is not built (cargo build -p vmrun-vmm)".into()),
    }
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Pids of processes whose command line mentions `needle` (our VMs' unique socket paths).
pub fn pids_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            alive(*pid) && String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .collect()
}

/// Waits until `pids` and every process mentioning `needle` are gone; returns the leftovers
/// after `timeout`.
pub fn wait_gone(needle: &Path, pids: &[u32], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut left = pids_mentioning(needle);
        left.extend(pids.iter().copied().filter(|p| alive(*p)));
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
