//! Noticing a guest that halted for good while the in-kernel irqchip handles `HLT`.
//!
//! A Linux guest without ACPI turns `poweroff` into `halt`: it stops the other CPUs and every
//! CPU ends in `cli; hlt` (`native_machine_halt` → `stop_this_cpu`). With the in-kernel
//! irqchip KVM handles that `HLT` itself (the vCPU blocks in `KVM_RUN`), so no
//! `KVM_EXIT_HLT` ever reaches us. Instead:
//!
//! - every [`KICK_PERIOD`] the device thread's timerfd starts a new *round* and kicks each
//!   vCPU thread out of `KVM_RUN` with the kick signal ([`crate::vcpu::kick_signal`]);
//! - the vCPU thread, back from `KVM_RUN` with `EINTR`, samples its vCPU ([`halted_for_good`]:
//!   `KVM_GET_MP_STATE` halted, `RFLAGS.IF` clear, no NMI pending or injected; or an AP still
//!   waiting for INIT/SIPI) and, if so, marks itself halted for the round;
//! - when every vCPU was halted for good in [`CONFIRM_ROUNDS`] consecutive rounds, the VM
//!   ends with [`crate::ExitReason::Halted`] (exit status 0).
//!
//! A halted vCPU with interrupts off wakes only for an NMI, INIT or SMI, which another vCPU
//! would have to send; requiring two rounds in which all of them were halted keeps a vCPU
//! woken between two samples from being taken for stopped. Cost for a running guest: one
//! signal, one `KVM_RUN` exit and one `KVM_GET_MP_STATE` per vCPU per period, and two
//! device-thread wakeups a second.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use kvm_bindings::{KVM_MP_STATE_HALTED, KVM_MP_STATE_INIT_RECEIVED, KVM_MP_STATE_UNINITIALIZED};
use kvm_ioctls::VcpuFd;

use crate::devices::bus::lock;

/// How often vCPUs are kicked and sampled.
pub const KICK_PERIOD: Duration = Duration::from_millis(500);

/// Consecutive rounds in which every vCPU must be halted for good. A guest that halts is
/// noticed after 2 to 3 periods (1 to 1.5 s).
pub const CONFIRM_ROUNDS: u32 = 2;

/// `RFLAGS.IF`.
const RFLAGS_IF: u64 = 1 << 9;

/// Whether the vCPU can only be woken by another vCPU or device: halted with interrupts
/// disabled and no NMI pending, or an AP that never got (or is waiting for) its SIPI.
pub fn halted_for_good(fd: &VcpuFd) -> Result<bool, kvm_ioctls::Error> {
    match fd.get_mp_state()?.mp_state {
        KVM_MP_STATE_UNINITIALIZED | KVM_MP_STATE_INIT_RECEIVED => Ok(true),
        KVM_MP_STATE_HALTED => {
            if fd.get_regs()?.rflags & RFLAGS_IF != 0 {
                return Ok(false);
            }
            let events = fd.get_vcpu_events()?;
            Ok(events.nmi.pending == 0 && events.nmi.injected == 0)
        }
        _ => Ok(false),
    }
}

/// The rounds, the per-vCPU samples and the threads to kick.
pub(crate) struct HaltWatch {
    /// The current round; starts at 1.
    round: AtomicU64,
    /// Per vCPU: the last round in which it was sampled halted for good (0: never).
    halted_in: Vec<AtomicU64>,
    /// Per vCPU: its thread while that thread runs. A thread removes itself (under this
    /// lock) before it ends, so a kick never targets a finished thread.
    threads: Mutex<Vec<Option<libc::pthread_t>>>,
    /// Consecutive rounds (so far) in which every vCPU was halted for good.
    streak: AtomicU32,
}

/// Keeps a vCPU thread registered for kicks; dropping it unregisters the thread.
pub(crate) struct Registration<'a> {
    watch: &'a HaltWatch,
    index: usize,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Some(slot) = lock(&self.watch.threads).get_mut(self.index) {
            *slot = None;
        }
    }
}

impl HaltWatch {
    pub(crate) fn new(vcpus: usize) -> Self {
        Self {
            round: AtomicU64::new(1),
            halted_in: (0..vcpus).map(|_| AtomicU64::new(0)).collect(),
            threads: Mutex::new(vec![None; vcpus]),
            streak: AtomicU32::new(0),
        }
    }

    /// Registers the calling thread as vCPU `index`'s, to be kicked every period.
    pub(crate) fn register(&self, index: usize) -> Registration<'_> {
        if let Some(slot) = lock(&self.threads).get_mut(index) {
            // SAFETY: pthread_self has no preconditions.
            *slot = Some(unsafe { libc::pthread_self() });
        }
        Registration { watch: self, index }
    }

    /// Called by vCPU `index`'s thread out of `KVM_RUN`: records whether it is halted for
    /// good in the current round.
    pub(crate) fn sample(&self, index: usize, fd: &VcpuFd) -> Result<(), kvm_ioctls::Error> {
        // Read the round first: if a new one starts meanwhile, this sample counts for the
        // old one only, and the new round sees this vCPU as not (yet) halted.
        let round = self.round.load(Ordering::SeqCst);
        if halted_for_good(fd)? {
            if let Some(h) = self.halted_in.get(index) {
                h.store(round, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// One period: true when every vCPU was halted for good in the last
    /// [`CONFIRM_ROUNDS`] rounds; otherwise starts the next round and kicks the vCPUs.
    pub(crate) fn tick(&self) -> bool {
        let round = self.round.load(Ordering::SeqCst);
        let all = self
            .halted_in
            .iter()
            .all(|h| h.load(Ordering::SeqCst) == round);
        if all {
            if self.streak.fetch_add(1, Ordering::SeqCst) + 1 >= CONFIRM_ROUNDS {
                return true;
            }
        } else {
            self.streak.store(0, Ordering::SeqCst);
        }
        self.round.store(round + 1, Ordering::SeqCst);
        self.kick_all();
        false
    }

    fn kick_all(&self) {
        let signal = crate::vcpu::kick_signal();
        for thread in lock(&self.threads).iter().flatten() {
            // SAFETY: the thread is alive: it unregisters under this lock before it ends.
            // The kick signal has a no-op handler (installed before any vCPU thread starts);
            // a failure (ESRCH) only means there is nothing to kick.
            unsafe { libc::pthread_kill(*thread, signal) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_only_after_all_vcpus_halted_in_consecutive_rounds() {
        let w = HaltWatch::new(2);
        let mark =
            |i: usize| w.halted_in[i].store(w.round.load(Ordering::SeqCst), Ordering::SeqCst);
        assert!(!w.tick(), "nothing sampled yet");
        mark(0);
        assert!(!w.tick(), "vCPU 1 still runs");
        mark(0);
        mark(1);
        assert!(!w.tick(), "one round is not enough");
        mark(0);
        assert!(!w.tick(), "vCPU 1 woke up: the streak restarts");
        mark(0);
        mark(1);
        assert!(!w.tick());
        mark(0);
        mark(1);
        assert!(w.tick());
    }
}
