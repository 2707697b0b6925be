//! The daemon's side of the `VmBackend` seam (crate `vmrun-vm`): which monitor
//! boots microVMs for isolated containers, chosen at start-up by
//! `--vm-backend auto|vmm|qemu` and by what the host supports. `auto` takes our
//! own VMM on hardware KVM and QEMU otherwise (TCG on PVM hosts), and a daemon
//! without any keeps serving plain containers; an explicit choice the host cannot
//! honour stops the daemon with the reason.

use std::path::PathBuf;
use std::sync::Arc;

use vmrun_vm::{select_backend, BackendChoice, HostCaps, KvmStatus, VmBackend, VmError};

/// The VM backend of this daemon, or why there is none.
#[derive(Debug, Clone)]
pub struct VmSupport {
    /// What was asked for.
    pub choice: BackendChoice,
    /// What `/dev/kvm` is here.
    pub kvm: KvmStatus,
    backend: Option<Arc<dyn VmBackend>>,
    /// Why no backend could be used (only with `auto`).
    unavailable: Option<String>,
}

impl VmSupport {
    /// Probes the host and picks a backend. `vmm_binary`: the `vmrun-vmm` to
    /// use (default: next to the daemon, then PATH).
    ///
    /// Errors only when `choice` names a backend the host cannot run.
    pub fn detect(choice: BackendChoice, vmm_binary: Option<PathBuf>) -> Result<Self, VmError> {
        Self::from_caps(choice, &HostCaps::detect(vmm_binary))
    }

    /// As [`VmSupport::detect`], from host facts already gathered.
    pub fn from_caps(choice: BackendChoice, caps: &HostCaps) -> Result<Self, VmError> {
        let (backend, unavailable) = match select_backend(choice, caps) {
            Ok(backend) => {
                tracing::info!(backend = backend.name(), kvm = %kvm_text(&caps.kvm), "VM backend chosen");
                (Some(Arc::from(backend)), None)
            }
            Err(e) if choice == BackendChoice::Auto => {
                tracing::warn!("no VM backend: {e}; containers run without a VM");
                (None, Some(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        Ok(VmSupport {
            choice,
            kvm: caps.kvm.clone(),
            backend,
            unavailable,
        })
    }

    /// The backend that launches VMs, if any.
    pub fn backend(&self) -> Option<&Arc<dyn VmBackend>> {
        self.backend.as_ref()
    }

    /// How the backend's guests run here: `kvm` (our VMM always; QEMU on hardware KVM) or
    /// `tcg` (QEMU emulating, where `/dev/kvm` cannot boot Linux).
    pub fn accelerator(&self) -> &'static str {
        match (&self.backend, &self.kvm) {
            (Some(b), _) if b.name() == "vmm" => "kvm",
            (_, KvmStatus::Hardware) => "kvm",
            _ => "tcg",
        }
    }

    /// Why there is no backend (only with `auto`).
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// `VmBackend` of `GET /info` (a vmrun extension; the docker CLI ignores it).
    pub fn info(&self) -> serde_json::Value {
        serde_json::json!({
            "Choice": choice_text(self.choice),
            "Backend": self.backend.as_ref().map(|b| b.name()),
            "Accelerator": self.backend.as_ref().map(|_| self.accelerator()),
            "Kvm": kvm_text(&self.kvm),
            "Unavailable": self.unavailable,
        })
    }
}

fn choice_text(choice: BackendChoice) -> &'static str {
    match choice {
        BackendChoice::Auto => "auto",
        BackendChoice::Vmm => "vmm",
        BackendChoice::Qemu => "qemu",
    }
}

fn kvm_text(kvm: &KvmStatus) -> String {
    match kvm {
        KvmStatus::Hardware => "hardware".into(),
        KvmStatus::Pvm(why) => format!("pvm: {why}"),
        KvmStatus::Unusable(why) => format!("unusable: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(kvm: KvmStatus, qemu: bool) -> HostCaps {
        let tool = |p: &str| qemu.then(|| PathBuf::from(p));
        HostCaps {
            kvm,
            vmm_binary: Some(PathBuf::from("/usr/libexec/vmrun-vmm")),
            qemu: tool("/usr/bin/qemu-system-x86_64"),
            vhost_device_vsock: tool("/usr/bin/vhost-device-vsock"),
        }
    }

    #[test]
    fn auto_on_pvm_takes_qemu_and_says_why_not_ours() {
        let vm = VmSupport::from_caps(
            BackendChoice::Auto,
            &caps(KvmStatus::Pvm("pvm".into()), true),
        )
        .unwrap();
        assert_eq!(vm.backend().map(|b| b.name()), Some("qemu"));
        let info = vm.info();
        assert_eq!(info["Choice"], "auto");
        assert_eq!(info["Backend"], "qemu");
        assert_eq!(info["Kvm"], "pvm: pvm");
    }

    #[test]
    fn auto_without_any_backend_keeps_the_daemon_and_the_reason() {
        let vm = VmSupport::from_caps(
            BackendChoice::Auto,
            &caps(KvmStatus::Unusable("no /dev/kvm".into()), false),
        )
        .unwrap();
        assert!(vm.backend().is_none());
        let why = vm.info()["Unavailable"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(why.contains("no /dev/kvm") && why.contains("qemu"), "{why}");
    }

    #[test]
    fn an_explicit_backend_the_host_cannot_run_is_an_error() {
        let err = VmSupport::from_caps(
            BackendChoice::Vmm,
            &caps(KvmStatus::Pvm("PVM here".into()), true),
        )
        .unwrap_err();
        assert!(err.to_string().contains("PVM here"), "{err}");
        let hw =
            VmSupport::from_caps(BackendChoice::Vmm, &caps(KvmStatus::Hardware, false)).unwrap();
        assert_eq!(hw.backend().map(|b| b.name()), Some("vmm"));
    }
}
