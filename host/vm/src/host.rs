//! What this host can run, and picking a backend from it.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::VmError;
use crate::qemu_backend::{Accel, QemuBackend};
use crate::vmm_backend::VmmBackend;
use crate::VmBackend;

/// What `/dev/kvm` is here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmStatus {
    /// Hardware KVM: boots Linux.
    Hardware,
    /// Paravirtual nested KVM (PVM): opens, but cannot boot a stock kernel.
    Pvm(String),
    /// Missing or not openable.
    Unusable(String),
}

/// The host facts [`select_backend`] decides on.
#[derive(Debug, Clone)]
pub struct HostCaps {
    pub kvm: KvmStatus,
    /// The `vmrun-vmm` binary, if found.
    pub vmm_binary: Option<PathBuf>,
    /// `qemu-system-x86_64`, if found.
    pub qemu: Option<PathBuf>,
    /// `vhost-device-vsock`, if found (PATH, then the tools cache of `installer/tools.sh`).
    pub vhost_device_vsock: Option<PathBuf>,
}

impl HostCaps {
    /// Probes this host. `vmm_binary`: where the caller's `vmrun-vmm` is; when `None`, it is
    /// looked for next to the current executable, then on PATH.
    pub fn detect(vmm_binary: Option<PathBuf>) -> Self {
        let vmm_binary = vmm_binary.filter(|p| p.is_file()).or_else(|| {
            let beside = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|d| d.join("vmrun-vmm")));
            beside
                .filter(|p| p.is_file())
                .or_else(|| find_tool("vmrun-vmm"))
        });
        HostCaps {
            kvm: kvm_status(),
            vmm_binary,
            qemu: find_tool("qemu-system-x86_64"),
            vhost_device_vsock: find_tool("vhost-device-vsock"),
        }
    }
}

/// Hardware KVM, PVM, or unusable (reuses `vmrun_vmm::pvm`).
pub fn kvm_status() -> KvmStatus {
    if let Err(why) = vmrun_vmm::pvm::kvm_usable() {
        return KvmStatus::Unusable(why);
    }
    match vmrun_vmm::pvm::kernel_boot_unsupported_reason() {
        Some(why) => KvmStatus::Pvm(why),
        None => KvmStatus::Hardware,
    }
}

/// Where `installer/tools.sh` installs tools: `${XDG_CACHE_HOME:-$HOME/.cache}/vmrun/tools/bin`.
pub fn tools_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(cache.join("vmrun/tools/bin"))
}

/// An executable `name` on PATH, else in [`tools_dir`].
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(tools_dir())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `auto`, `vmm` or `qemu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Our VMM on hardware KVM, QEMU otherwise.
    #[default]
    Auto,
    Vmm,
    Qemu,
}

impl FromStr for BackendChoice {
    type Err = VmError;
    fn from_str(s: &str) -> Result<Self, VmError> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "vmm" => Ok(BackendChoice::Vmm),
            "qemu" => Ok(BackendChoice::Qemu),
            other => Err(VmError::UnknownBackend(other.into())),
        }
    }
}

/// Picks the backend: `auto` = our VMM when `/dev/kvm` is hardware KVM (and `vmrun-vmm` is
/// found), else QEMU (`-accel kvm` on hardware KVM, `-accel tcg` otherwise). An explicit
/// choice that cannot work here fails with the reason.
pub fn select_backend(
    choice: BackendChoice,
    host: &HostCaps,
) -> Result<Box<dyn VmBackend>, VmError> {
    match choice {
        BackendChoice::Vmm => vmm(host).map(|b| Box::new(b) as Box<dyn VmBackend>),
        BackendChoice::Qemu => qemu(host).map(|b| Box::new(b) as Box<dyn VmBackend>),
        BackendChoice::Auto => match vmm(host) {
            Ok(b) => Ok(Box::new(b)),
            Err(vmm_err) => match qemu(host) {
                Ok(b) => {
                    tracing::info!("VM backend: QEMU ({vmm_err})");
                    Ok(Box::new(b))
                }
                Err(qemu_err) => Err(VmError::BackendUnavailable {
                    backend: "auto",
                    reason: format!("neither backend works: {vmm_err}; {qemu_err}"),
                }),
            },
        },
    }
}

fn vmm(host: &HostCaps) -> Result<VmmBackend, VmError> {
    let unavailable = |reason: String| VmError::BackendUnavailable {
        backend: "vmm",
        reason,
    };
    match &host.kvm {
        KvmStatus::Hardware => {}
        KvmStatus::Pvm(why) | KvmStatus::Unusable(why) => return Err(unavailable(why.clone())),
    }
    let binary = host
        .vmm_binary
        .clone()
        .ok_or_else(|| unavailable("the vmrun-vmm binary was not found".into()))?;
    Ok(VmmBackend::new(binary))
}

fn qemu(host: &HostCaps) -> Result<QemuBackend, VmError> {
    let unavailable = |reason: &str| VmError::BackendUnavailable {
        backend: "qemu",
        reason: reason.into(),
    };
    let qemu = host.qemu.clone().ok_or_else(|| {
        unavailable("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
    })?;
    let vhost = host.vhost_device_vsock.clone().ok_or_else(|| {
        unavailable(
            "vhost-device-vsock was not found on PATH or in the vmrun tools cache \
             (installer/tools.sh installs it)",
        )
    })?;
    let accel = if host.kvm == KvmStatus::Hardware {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    Ok(QemuBackend::new(qemu, vhost, accel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(kvm: KvmStatus, all_tools: bool) -> HostCaps {
        let some = |p: &str| all_tools.then(|| PathBuf::from(p));
        HostCaps {
            kvm,
            vmm_binary: some("/bin/vmrun-vmm"),
            qemu: some("/bin/qemu-system-x86_64"),
            vhost_device_vsock: some("/bin/vhost-device-vsock"),
        }
    }

    #[test]
    fn auto_prefers_our_vmm_on_hardware_kvm_only() {
        let hw = select_backend(BackendChoice::Auto, &caps(KvmStatus::Hardware, true)).unwrap();
        assert_eq!(hw.name(), "vmm");
        let pvm = select_backend(
            BackendChoice::Auto,
            &caps(KvmStatus::Pvm("pvm".into()), true),
        )
        .unwrap();
        assert_eq!(pvm.name(), "qemu");
        let none = select_backend(
            BackendChoice::Auto,
            &caps(KvmStatus::Unusable("no".into()), true),
        )
        .unwrap();
        assert_eq!(none.name(), "qemu");
    }

    #[test]
    fn explicit_choices_fail_with_the_reason() {
        let err = select_backend(
            BackendChoice::Vmm,
            &caps(KvmStatus::Pvm("is PVM".into()), true),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("vmm") && err.contains("is PVM"), "{err}");
        let err = select_backend(BackendChoice::Qemu, &caps(KvmStatus::Hardware, false))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("qemu-system-x86_64 is not installed"), "{err}");
        let err = select_backend(
            BackendChoice::Auto,
            &caps(KvmStatus::Pvm("pvm".into()), false),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("neither backend"), "{err}");
        assert!("kvm".parse::<BackendChoice>().is_err());
        assert_eq!(
            "qemu".parse::<BackendChoice>().unwrap(),
            BackendChoice::Qemu
        );
    }
}
