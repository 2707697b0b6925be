//! seccomp-bpf filters for the VMM's threads (`seccompiler`, as Firecracker does it).
//!
//! Each thread installs its own filter once it has been set up and before it handles guest
//! input: a vCPU thread right before its `KVM_RUN` loop, the device thread before its epoll
//! loop serves, and the `vmrun-vmm` binary's main thread once the VM is running. Filters are
//! per thread (no `TSYNC`), so an embedding process's other threads are not affected.
//!
//! A syscall outside a thread's list kills the whole process (`SIGSYS`, Firecracker's
//! default): a VMM thread that does something unexpected is treated as compromised. Debug a
//! kill with `vmrun-vmm --no-seccomp` (or [`crate::VmConfig::seccomp`] = false), or under
//! `strace -f`, whose last line for the thread names the syscall.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// The threads of a VM, each with its own filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// A vCPU thread: `KVM_RUN`, exits to the serial/i8042/virtio-mmio devices.
    Vcpu,
    /// The device thread: the epoll loop, virtio queues, vsock sockets, block images.
    Devices,
    /// The `vmrun-vmm` main thread once the VM runs: waits, kicks vCPUs, tears down.
    Main,
}

/// Building or installing a filter failed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The rules could not be compiled to BPF.
    #[error("building the {0:?} seccomp filter")]
    Build(ThreadKind, #[source] seccompiler::BackendError),
    /// The kernel refused the filter.
    #[error("installing the seccomp filter")]
    Install(#[source] seccompiler::Error),
}

/// `KVM_RUN` (`_IO(KVMIO, 0x80)`).
const KVM_RUN: u64 = 0xae80;

/// `_IOR(KVMIO, nr, T)` for a `T` of `size` bytes.
const fn kvm_ior(nr: u64, size: usize) -> u64 {
    (2 << 30) | ((size as u64) << 16) | (0xae << 8) | nr
}

/// The halt watch's samples ([`crate::halt`]): `KVM_GET_MP_STATE`, `KVM_GET_REGS`,
/// `KVM_GET_VCPU_EVENTS`.
const KVM_GET_MP_STATE: u64 = kvm_ior(0x98, std::mem::size_of::<kvm_bindings::kvm_mp_state>());
const KVM_GET_REGS: u64 = kvm_ior(0x81, std::mem::size_of::<kvm_bindings::kvm_regs>());
const KVM_GET_VCPU_EVENTS: u64 =
    kvm_ior(0x9f, std::mem::size_of::<kvm_bindings::kvm_vcpu_events>());

/// Memory, locks, signals, time and exit: what Rust's std and glibc do in any thread.
const COMMON: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_mprotect,
    libc::SYS_brk,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_getrandom,
    // abort() (a panic with panic=abort) raises SIGABRT on itself.
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Moving bytes for the devices: sockets (vsock), the block image, the muxer's epoll set.
/// vCPU threads need these too: a virtio-mmio register write (driver activation, a trapped
/// queue notify) runs device code on the vCPU thread.
const DEVICE_IO: &[i64] = &[
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_shutdown,
    libc::SYS_epoll_ctl,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_fdatasync,
    libc::SYS_fsync,
];

/// The device thread's own: waiting, accepting host clients, connecting to `<path>_<port>`,
/// the connect-deadline timer.
const DEVICE_LOOP: &[i64] = &[
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_timerfd_settime,
];

/// The main thread's own: waiting for the exit/signal fds, kicking vCPUs, removing the
/// vsock socket file.
const MAIN: &[i64] = &[
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
];

fn arg_eq(arg: u8, value: u64) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
}

/// One rule per allowed value of argument `arg`.
fn any_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    values
        .iter()
        .map(|&v| SeccompRule::new(vec![arg_eq(arg, v)?]))
        .collect()
}

type Rules = BTreeMap<i64, Vec<SeccompRule>>;

fn rules(kind: ThreadKind) -> Result<Rules, seccompiler::BackendError> {
    let mut rules: Rules = BTreeMap::new();
    let mut allow = |list: &[i64]| {
        for &nr in list {
            rules.insert(nr, Vec::new());
        }
    };
    allow(COMMON);
    match kind {
        ThreadKind::Vcpu => allow(DEVICE_IO),
        ThreadKind::Devices => {
            allow(DEVICE_IO);
            allow(DEVICE_LOOP);
        }
        ThreadKind::Main => allow(MAIN),
    }
    // std's fd handling: the CLOEXEC/non-blocking checks (debug builds check F_GETFD on drop).
    let fcntl_cmds = [libc::F_GETFD, libc::F_SETFD, libc::F_GETFL, libc::F_SETFL];
    rules.insert(libc::SYS_fcntl, any_of(1, &fcntl_cmds.map(|c| c as u64))?);
    match kind {
        ThreadKind::Vcpu => {
            let vcpu_ioctls = [KVM_RUN, KVM_GET_MP_STATE, KVM_GET_REGS, KVM_GET_VCPU_EVENTS];
            rules.insert(libc::SYS_ioctl, any_of(1, &vcpu_ioctls)?);
        }
        ThreadKind::Devices => {
            // Accepted and connected streams are made non-blocking.
            rules.insert(libc::SYS_ioctl, any_of(1, &[libc::FIONBIO])?);
            // Guest connections reach host Unix sockets only.
            rules.insert(libc::SYS_socket, any_of(0, &[libc::AF_UNIX as u64])?);
        }
        ThreadKind::Main => {}
    }
    Ok(rules)
}

/// The compiled filter for `kind`: the listed syscalls are allowed, anything else kills the
/// process.
pub fn filter(kind: ThreadKind) -> Result<BpfProgram, SeccompError> {
    let build = |e| SeccompError::Build(kind, e);
    let arch = std::env::consts::ARCH.try_into().map_err(build)?;
    let filter = SeccompFilter::new(
        rules(kind).map_err(build)?,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )
    .map_err(build)?;
    filter.try_into().map_err(build)
}

/// Installs `program` on the calling thread (and sets `no_new_privs`, which it needs).
pub fn apply(program: &BpfProgram) -> Result<(), SeccompError> {
    seccompiler::apply_filter(program).map_err(SeccompError::Install)
}

/// Builds and installs the filter for `kind` on the calling thread.
pub fn install(kind: ThreadKind) -> Result<(), SeccompError> {
    apply(&filter(kind)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(KVM_GET_MP_STATE, 0x8004_ae98);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_GET_VCPU_EVENTS, 0x8040_ae9f);
    }

    #[test]
    fn every_filter_compiles() {
        for kind in [ThreadKind::Vcpu, ThreadKind::Devices, ThreadKind::Main] {
            assert!(!filter(kind).unwrap().is_empty());
        }
    }

    #[test]
    fn only_the_vcpu_may_run_the_guest_and_only_devices_open_sockets() {
        let vcpu = rules(ThreadKind::Vcpu).unwrap();
        let dev = rules(ThreadKind::Devices).unwrap();
        let main = rules(ThreadKind::Main).unwrap();
        assert!(!vcpu.contains_key(&libc::SYS_socket) && !main.contains_key(&libc::SYS_socket));
        assert!(!main.contains_key(&libc::SYS_ioctl));
        assert!(!dev.contains_key(&libc::SYS_unlink) && !vcpu.contains_key(&libc::SYS_unlink));
        for r in [&vcpu, &dev, &main] {
            assert!(!r.contains_key(&libc::SYS_execve));
            assert!(!r.contains_key(&libc::SYS_openat));
        }
    }
}
