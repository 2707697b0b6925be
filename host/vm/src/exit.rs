//! Why a VM stopped.

use std::fmt;

/// How a VM ended, the same for every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// The guest halted or powered off (our VMM only: QEMU `microvm,acpi=off` has no
    /// poweroff device, so a guest that wants to end its VM reboots).
    Poweroff,
    /// The guest rebooted (`reboot(2)`, `reboot=k`, a triple fault, or a panic with
    /// `panic=-1`); VMs are never restarted in place.
    Reset,
    /// Ended by [`crate::VmInstance::stop`] (or dropping the instance).
    Stopped,
    /// The monitor was ended by a signal nobody here sent (e.g. an operator's `kill`).
    Terminated { signal: i32 },
    /// The VM or its monitor failed; `message` is what the monitor said.
    Failed { message: String },
}

impl fmt::Display for VmExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmExit::Poweroff => f.write_str("the guest powered off"),
            VmExit::Reset => f.write_str("the guest rebooted"),
            VmExit::Stopped => f.write_str("stopped by vmrun"),
            VmExit::Terminated { signal } => write!(f, "the monitor was killed by signal {signal}"),
            VmExit::Failed { message } => write!(f, "the VM failed: {message}"),
        }
    }
}
