//! Detecting hosts whose `/dev/kvm` cannot boot a stock Linux kernel.

use std::path::Path;

/// Why full kernel boots cannot work on this host, if they cannot: `/dev/kvm` missing, or a
/// paravirtual nested KVM (PVM: `/sys/module/kvm_pvm`, or `kvm-pvm: loaded` in the kernel log)
/// whose instruction emulation stops a stock kernel early.
pub fn kernel_boot_unsupported_reason() -> Option<String> {
    if !Path::new("/dev/kvm").exists() {
        return Some("/dev/kvm does not exist".into());
    }
    if Path::new("/sys/module/kvm_pvm").exists() {
        return Some(
            "/dev/kvm is PVM (paravirtual nested KVM, /sys/module/kvm_pvm exists); it runs \
             small test programs but cannot boot a stock Linux kernel"
                .into(),
        );
    }
    if let Ok(log) = std::process::Command::new("dmesg").output() {
        if String::from_utf8_lossy(&log.stdout).contains("kvm-pvm: loaded") {
            return Some("/dev/kvm is PVM (kernel log says kvm-pvm: loaded)".into());
        }
    }
    None
}

/// Whether `/dev/kvm` can be opened at all (tests skip when it cannot).
pub fn kvm_usable() -> Result<(), String> {
    kvm_ioctls::Kvm::new()
        .map(|_| ())
        .map_err(|e| format!("cannot open /dev/kvm: {e}"))
}
