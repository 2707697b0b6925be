//! Why a VM stopped, and the shared stop/exit state every VM thread sees.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use vmm_sys_util::eventfd::EventFd;

use crate::devices::bus::lock;
use crate::halt::HaltWatch;

/// Why a VM stopped. [`ExitReason::exit_code`] maps it to the `vmrun-vmm` exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// Every vCPU halted for good: it executed `HLT` with no interrupt controller to wake it
    /// (raw images), or, with the in-kernel irqchip, every vCPU sat halted with interrupts
    /// disabled and no NMI pending ([`crate::halt`]; Linux's `halt`/`poweroff` without ACPI).
    Halted,
    /// The guest powered off (`KVM_SYSTEM_EVENT_SHUTDOWN`).
    PowerOff,
    /// The guest reset: i8042 reset command, triple fault or `KVM_SYSTEM_EVENT_RESET`.
    Reset,
    /// The host asked the VM to stop ([`crate::RunningVm::stop`], SIGTERM, parent death).
    Stopped,
    /// A vCPU hit an error KVM could not handle (emulation failure, failed entry, ...).
    Error(String),
}

impl ExitReason {
    /// Process exit status for the `vmrun-vmm` binary: 0 halt/poweroff, 2 reset, 3 error,
    /// 143 (128 + SIGTERM) stopped by the host. Status 1 means the VM never started.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExitReason::Halted | ExitReason::PowerOff => 0,
            ExitReason::Reset => 2,
            ExitReason::Error(_) => 3,
            ExitReason::Stopped => 143,
        }
    }
}

/// State shared by the vCPU threads, the device event loop and the owner.
pub(crate) struct VmShared {
    stop: AtomicBool,
    exit: Mutex<Option<ExitReason>>,
    /// Written once when the first exit reason is recorded.
    pub(crate) exit_evt: EventFd,
    halted: AtomicUsize,
    vcpus: usize,
    /// Present when the in-kernel irqchip handles `HLT`.
    halt_watch: Option<HaltWatch>,
}

impl VmShared {
    /// `watch_halts`: the in-kernel irqchip handles `HLT`, so halts are found by sampling.
    pub(crate) fn new(vcpus: usize, watch_halts: bool) -> std::io::Result<Self> {
        Ok(Self {
            stop: AtomicBool::new(false),
            exit: Mutex::new(None),
            exit_evt: EventFd::new(libc::EFD_NONBLOCK)?,
            halted: AtomicUsize::new(0),
            vcpus,
            halt_watch: watch_halts.then(|| HaltWatch::new(vcpus)),
        })
    }

    /// Records `reason` unless one is already recorded, and tells everyone to stop.
    pub(crate) fn request_exit(&self, reason: ExitReason) {
        let mut exit = lock(&self.exit);
        if exit.is_none() {
            tracing::debug!(?reason, "VM exit requested");
            *exit = Some(reason);
            // Ignoring a failed eventfd write: the counter can only overflow after 2^64 writes.
            let _ = self.exit_evt.write(1);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// A vCPU halted for good; the VM ends when all have.
    pub(crate) fn vcpu_halted(&self) {
        if self.halted.fetch_add(1, Ordering::SeqCst) + 1 == self.vcpus {
            self.request_exit(ExitReason::Halted);
        }
    }

    pub(crate) fn halt_watch(&self) -> Option<&HaltWatch> {
        self.halt_watch.as_ref()
    }

    pub(crate) fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(crate) fn exit_reason(&self) -> Option<ExitReason> {
        lock(&self.exit).clone()
    }
}
