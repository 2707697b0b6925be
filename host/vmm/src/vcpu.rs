//! vCPU creation, per-boot-protocol register setup, and the run loop each vCPU thread runs.

use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use seccompiler::BpfProgram;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use crate::arch::cpuid::filter_cpuid;
use crate::arch::regs::{self, EntryMode, EntryRegs, RegsError};
use crate::devices::Bus;
use crate::exit::{ExitReason, VmShared};
use crate::memory::{PVH_INFO_START, ZERO_PAGE_START};

const KVM_SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const KVM_SYSTEM_EVENT_RESET: u32 = 2;

/// Where and how vCPUs start.
#[derive(Clone, Copy, Debug)]
pub struct BootEntry {
    /// CPU mode at entry.
    pub mode: EntryMode,
    /// Entry address.
    pub rip: u64,
    /// True for a Linux kernel (MSRs, LAPIC, boot_params/start_info pointers).
    pub kernel: bool,
}

/// Errors creating or configuring a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// A KVM ioctl failed.
    #[error("vCPU {0}: {1} failed")]
    Kvm(u8, &'static str, #[source] kvm_ioctls::Error),
    /// Register setup failed.
    #[error("vCPU {0}: register setup")]
    Regs(u8, #[source] RegsError),
    /// The thread could not be spawned.
    #[error("vCPU {0}: spawning thread")]
    Spawn(u8, #[source] std::io::Error),
}

/// A configured vCPU, ready to run.
pub struct Vcpu {
    fd: VcpuFd,
    index: u8,
}

impl Vcpu {
    /// Creates vCPU `index` of `count` and programs CPUID and registers for `entry`.
    pub fn new(
        kvm: &Kvm,
        vm: &VmFd,
        mem: &GuestMemoryMmap,
        index: u8,
        count: u8,
        entry: BootEntry,
    ) -> Result<Self, VcpuError> {
        let fd = vm
            .create_vcpu(u64::from(index))
            .map_err(|e| VcpuError::Kvm(index, "KVM_CREATE_VCPU", e))?;
        let mut cpuid: CpuId = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| VcpuError::Kvm(index, "KVM_GET_SUPPORTED_CPUID", e))?;
        filter_cpuid(&mut cpuid, index, count);
        fd.set_cpuid2(&cpuid)
            .map_err(|e| VcpuError::Kvm(index, "KVM_SET_CPUID2", e))?;
        let r = |e| VcpuError::Regs(index, e);
        if entry.kernel {
            regs::setup_msrs(&fd).map_err(r)?;
            regs::setup_lapic(&fd).map_err(r)?;
        }
        regs::setup_fpu(&fd).map_err(r)?;
        regs::setup_sregs(mem, &fd, entry.mode).map_err(r)?;
        let mut gp = EntryRegs {
            rip: entry.rip,
            rdi: u64::from(index),
            ..Default::default()
        };
        if entry.kernel {
            gp.rdi = 0;
            gp.rsp = regs::boot_stack();
            match entry.mode {
                EntryMode::Protected32 => gp.rbx = PVH_INFO_START,
                _ => gp.rsi = ZERO_PAGE_START,
            }
        }
        regs::setup_regs(&fd, gp).map_err(r)?;
        Ok(Self { fd, index })
    }
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// The signal that kicks a vCPU thread out of `KVM_RUN`.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

fn install_kick_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = register_signal_handler(kick_signal(), kick_handler) {
            tracing::error!("cannot install the vCPU kick handler: {e}");
        }
    });
}

/// Buses a vCPU dispatches its exits to.
#[derive(Clone)]
pub struct ExitBuses {
    /// Port I/O.
    pub pio: Arc<Bus>,
    /// MMIO.
    pub mmio: Arc<Bus>,
}

/// Starts `vcpu` on its own thread.
/// With `seccomp`, the thread installs that filter right before its `KVM_RUN` loop.
pub(crate) fn spawn(
    mut vcpu: Vcpu,
    buses: ExitBuses,
    shared: Arc<VmShared>,
    seccomp: Option<BpfProgram>,
) -> Result<JoinHandle<()>, VcpuError> {
    install_kick_handler();
    let index = vcpu.index;
    std::thread::Builder::new()
        .name(format!("vcpu{index}"))
        .spawn(move || {
            if let Some(program) = seccomp {
                if let Err(e) = crate::seccomp::apply(&program) {
                    shared.request_exit(ExitReason::Error(format!("vCPU {index}: {e}")));
                    return;
                }
            }
            // Unregistered (under the watch's lock) when the thread leaves the loop.
            let _kickable = shared.halt_watch().map(|w| w.register(usize::from(index)));
            run_loop(&mut vcpu, &buses, &shared)
        })
        .map_err(|e| VcpuError::Spawn(index, e))
}

/// Kicked out of `KVM_RUN`: tells the halt watch (if any) whether this vCPU is halted for
/// good. A failing sample is logged once and counts as "running".
fn sample_halt(vcpu: &Vcpu, shared: &VmShared, failed: &mut bool) {
    let Some(watch) = shared.halt_watch() else {
        return;
    };
    if let Err(e) = watch.sample(usize::from(vcpu.index), &vcpu.fd) {
        if !*failed {
            tracing::warn!(vcpu = vcpu.index, "cannot sample the halt state: {e}");
            *failed = true;
        }
    }
}

fn run_loop(vcpu: &mut Vcpu, buses: &ExitBuses, shared: &VmShared) {
    let index = vcpu.index;
    let mut sample_failed = false;
    while !shared.should_stop() {
        match vcpu.fd.run() {
            Ok(VcpuExit::IoIn(port, data)) => {
                buses.pio.read(u64::from(port), data);
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                buses.pio.write(u64::from(port), data);
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                if !buses.mmio.read(addr, data) {
                    tracing::trace!(vcpu = index, "unhandled MMIO read at {addr:#x}");
                }
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                if !buses.mmio.write(addr, data) {
                    tracing::trace!(vcpu = index, "unhandled MMIO write at {addr:#x}");
                }
            }
            Ok(VcpuExit::Hlt) => {
                tracing::debug!(vcpu = index, "halted");
                shared.vcpu_halted();
                return;
            }
            Ok(VcpuExit::Shutdown) => shared.request_exit(ExitReason::Reset),
            Ok(VcpuExit::SystemEvent(kind, _)) => match kind {
                KVM_SYSTEM_EVENT_SHUTDOWN => shared.request_exit(ExitReason::PowerOff),
                KVM_SYSTEM_EVENT_RESET => shared.request_exit(ExitReason::Reset),
                other => shared.request_exit(ExitReason::Error(format!(
                    "vCPU {index}: unknown system event {other}"
                ))),
            },
            Ok(VcpuExit::Intr) | Ok(VcpuExit::IrqWindowOpen) => {}
            Ok(VcpuExit::FailEntry(reason, cpu)) => shared.request_exit(ExitReason::Error(
                format!("vCPU {index}: KVM entry failed (reason {reason:#x}, cpu {cpu})"),
            )),
            Ok(VcpuExit::InternalError) => shared.request_exit(ExitReason::Error(format!(
                "vCPU {index}: KVM internal error (emulation failure)"
            ))),
            Ok(other) => shared.request_exit(ExitReason::Error(format!(
                "vCPU {index}: unexpected exit {other:?}"
            ))),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                vcpu.fd.set_kvm_immediate_exit(0);
                sample_halt(vcpu, shared, &mut sample_failed);
            }
            Err(e) => shared.request_exit(ExitReason::Error(format!(
                "vCPU {index}: KVM_RUN failed: {e}"
            ))),
        }
    }
}

/// Stops every vCPU thread: the stop flag is already set; signals interrupt `KVM_RUN` until
/// each thread has left its loop. Returns false if some thread did not stop in `timeout`.
pub(crate) fn kick_and_join(threads: &mut Vec<JoinHandle<()>>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while threads.iter().any(|t| !t.is_finished()) {
        if Instant::now() > deadline {
            return false;
        }
        for t in threads.iter().filter(|t| !t.is_finished()) {
            // ESRCH just means the thread already exited.
            let _ = t.kill(kick_signal());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for t in threads.drain(..) {
        if t.join().is_err() {
            tracing::error!("a vCPU thread panicked");
        }
    }
    true
}
