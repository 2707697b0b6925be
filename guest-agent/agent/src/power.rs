//! Ending the VM: sync, unmount what the agent mounted, then `reboot(2)`.
//!
//! `vmrun-vm` expects a guest to end its VM by rebooting (`reboot=k` on the command line,
//! QEMU with `-no-reboot`, our VMM on the i8042 reset): under QEMU `microvm,acpi=off` a
//! power-off only halts the CPUs. So [`ShutdownAction::Reboot`] is the default.

use nix::sys::reboot::{reboot, RebootMode};
use vmrun_agent_protocol::ShutdownAction;

/// Mount points under these are unmounted before the reboot, deepest first.
const UNMOUNT_UNDER: &[&str] = &["/run/vmrun"];

/// How long processes get between SIGTERM and SIGKILL at shutdown.
const TERM_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// Ends every other process (SIGTERM, then SIGKILL), syncs, unmounts, ends the VM. Only
/// returns on failure. Only PID 1 calls this: `kill(-1)` spares the caller alone.
pub fn shutdown(action: ShutdownAction) -> nix::Error {
    use nix::sys::signal::{kill, Signal};
    let everyone = nix::unistd::Pid::from_raw(-1);
    if kill(everyone, Signal::SIGTERM).is_ok() {
        std::thread::sleep(TERM_GRACE);
        let _ = kill(everyone, Signal::SIGKILL);
    }
    nix::unistd::sync();
    for target in crate::mounts::mounts_under(UNMOUNT_UNDER) {
        if let Err(e) = nix::mount::umount2(target.as_str(), nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!("unmounting {target}: {e}");
        }
    }
    nix::unistd::sync();
    let mode = match action {
        ShutdownAction::Reboot => RebootMode::RB_AUTOBOOT,
        ShutdownAction::PowerOff => RebootMode::RB_POWER_OFF,
    };
    match reboot(mode) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}
