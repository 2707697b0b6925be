//! Seccomp: turning an OCI `LinuxSeccomp` section into a BPF program (with libseccomp, in the
//! parent, where allocating is fine) and loading that program in the forked child with one
//! `seccomp(2)` call that allocates nothing.
//!
//! Loading a filter needs either `no_new_privs` or CAP_SYS_ADMIN. Runtimes (runc) therefore
//! either load it before dropping capabilities, or, when the spec asks for
//! `noNewPrivileges`, call [`set_no_new_privs`] and load it last, just before exec.

mod default_profile;
mod default_syscalls;

use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

pub(crate) use default_profile::canonical_cap;
pub use default_profile::docker_default_profile;

/// `SECCOMP_SET_MODE_FILTER` from linux/seccomp.h.
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_LOG: libc::c_ulong = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_ulong = 4;
/// The kernel's limit on one filter (BPF_MAXINSNS).
const MAX_INSTRUCTIONS: usize = 4096;
/// Seccomp arguments are indexed 0..6.
const MAX_ARG_INDEX: usize = 5;

/// An error building or loading a seccomp filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The spec uses an action we cannot honour (SCMP_ACT_NOTIFY needs a listener).
    #[error("unsupported seccomp action {0:?}")]
    UnsupportedAction(LinuxSeccompAction),
    /// An argument condition refers to an argument a syscall cannot have.
    #[error("syscall {syscall}: argument index {index} is out of range (0..=5)")]
    InvalidArgIndex {
        /// The syscall name.
        syscall: String,
        /// The index given.
        index: usize,
    },
    /// libseccomp refused something while building the filter.
    #[error("libseccomp: {context}: {source}")]
    Libseccomp {
        /// What we were doing (names the syscall or architecture).
        context: String,
        /// libseccomp's error.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// Exporting the BPF program failed.
    #[error("exporting the seccomp BPF program: {0}")]
    Export(#[source] std::io::Error),
    /// The program does not fit the kernel's limit.
    #[error("seccomp program has {0} instructions, the kernel takes at most 4096")]
    TooLarge(usize),
    /// The kernel refused the filter. EACCES: neither no_new_privs nor CAP_SYS_ADMIN.
    #[error("seccomp(SECCOMP_SET_MODE_FILTER) failed: {0}")]
    Load(Errno),
    /// prctl(PR_SET_NO_NEW_PRIVS) failed.
    #[error("prctl(PR_SET_NO_NEW_PRIVS) failed: {0}")]
    NoNewPrivs(Errno),
}

/// A ready-to-load BPF program plus the `seccomp(2)` flags to load it with.
#[derive(Clone)]
pub struct CompiledFilter {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl CompiledFilter {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Whether the program is empty (never true for a compiled filter).
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }
}

impl std::fmt::Debug for CompiledFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledFilter")
            .field("instructions", &self.program.len())
            .field("flags", &self.flags)
            .finish()
    }
}

/// Builds the BPF program for `spec`. Syscall names this libseccomp does not know are skipped
/// (as runc does); rules whose action equals the default action are redundant and skipped.
pub fn compile(spec: &LinuxSeccomp) -> Result<CompiledFilter, SeccompError> {
    let default_errno = spec.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default_action = scmp_action(spec.default_action(), Some(default_errno))?;
    let lib_err = |context: String| move |source| SeccompError::Libseccomp { context, source };
    let mut ctx =
        ScmpFilterContext::new(default_action).map_err(lib_err("creating filter".into()))?;
    for arch in spec.architectures().iter().flatten() {
        let arch = scmp_arch(*arch);
        let present = ctx
            .is_arch_present(arch)
            .map_err(lib_err(format!("checking architecture {arch:?}")))?;
        if !present {
            ctx.add_arch(arch)
                .map_err(lib_err(format!("adding architecture {arch:?}")))?;
        }
    }
    for rule in spec.syscalls().iter().flatten() {
        let action = scmp_action(rule.action(), rule.errno_ret())?;
        if action == default_action {
            continue;
        }
        let args = rule.args().as_deref().unwrap_or_default();
        for name in rule.names() {
            let conditions = conditions(name, args)?;
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                tracing::debug!(name, "seccomp: unknown syscall skipped");
                continue;
            };
            let context = || format!("adding rule for {name}");
            if conditions.is_empty() {
                ctx.add_rule(action, syscall).map_err(lib_err(context()))?;
            } else if distinct_indices(args) {
                ctx.add_rule_conditional(action, syscall, &conditions)
                    .map_err(lib_err(context()))?;
            } else {
                // libseccomp cannot AND two conditions on one argument; like runc, add one rule
                // per condition (which ORs them).
                for condition in &conditions {
                    ctx.add_rule_conditional(action, syscall, std::slice::from_ref(condition))
                        .map_err(lib_err(context()))?;
                }
            }
        }
    }
    let program = export(&ctx)?;
    Ok(CompiledFilter {
        program,
        flags: filter_flags(spec.flags().as_deref().unwrap_or_default()),
    })
}

/// Loads `filter` into the calling thread (and, with TSYNC, its process). Meant for the forked
/// child just before exec: no allocation, one system call.
pub fn apply(filter: &CompiledFilter) -> Result<(), SeccompError> {
    let prog = libc::sock_fprog {
        // compile() guarantees at most MAX_INSTRUCTIONS, which fits a u16.
        len: filter.program.len() as libc::c_ushort,
        filter: filter.program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filter.program`, which outlives the call; the kernel only reads
    // (copies) the program and does not keep the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            filter.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    match rc {
        0 => Ok(()),
        // With TSYNC, a positive value is the id of a thread that could not be synchronized.
        r if r > 0 => Err(SeccompError::Load(Errno::ESRCH)),
        _ => Err(SeccompError::Load(Errno::last())),
    }
}

/// Sets `no_new_privs` on the calling thread, so that [`apply`] works without CAP_SYS_ADMIN.
pub fn set_no_new_privs() -> Result<(), SeccompError> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(SeccompError::NoNewPrivs(Errno::last()))
    }
}

fn scmp_action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, SeccompError> {
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno as u16 as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => return Err(SeccompError::UnsupportedAction(action)),
    })
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
    }
}

fn conditions(name: &str, args: &[LinuxSeccompArg]) -> Result<Vec<ScmpArgCompare>, SeccompError> {
    args.iter()
        .map(|arg| {
            if arg.index() > MAX_ARG_INDEX {
                return Err(SeccompError::InvalidArgIndex {
                    syscall: name.to_string(),
                    index: arg.index(),
                });
            }
            let (op, datum) = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
                LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
                LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
                LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
                LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
                LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
                // OCI: value is the mask, valueTwo the value to compare the masked argument with.
                LinuxSeccompOperator::ScmpCmpMaskedEq => (
                    ScmpCompareOp::MaskedEqual(arg.value()),
                    arg.value_two().unwrap_or(0),
                ),
            };
            Ok(ScmpArgCompare::new(arg.index() as u32, op, datum))
        })
        .collect()
}

fn distinct_indices(args: &[LinuxSeccompArg]) -> bool {
    args.iter()
        .enumerate()
        .all(|(i, a)| args[..i].iter().all(|b| b.index() != a.index()))
}

fn filter_flags(flags: &[LinuxSeccompFilterFlag]) -> libc::c_ulong {
    flags.iter().fold(0, |acc, flag| {
        acc | match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        }
    })
}

/// Exports the filter's BPF through a memfd (libseccomp 2.5 has no export-to-memory) and
/// decodes it into instructions.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let fd = nix::sys::memfd::memfd_create(
        c"vmrun-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| SeccompError::Export(e.into()))?;
    ctx.export_bpf(&fd)
        .map_err(|source| SeccompError::Libseccomp {
            context: "exporting BPF".into(),
            source,
        })?;
    let mut file = std::fs::File::from(fd);
    file.seek(SeekFrom::Start(0))
        .map_err(SeccompError::Export)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(SeccompError::Export)?;
    const INSN: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % INSN != 0 || bytes.is_empty() {
        return Err(SeccompError::Export(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "BPF export of {} bytes is not whole instructions",
                bytes.len()
            ),
        )));
    }
    let program: Vec<libc::sock_filter> = bytes
        .chunks_exact(INSN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    if program.len() > MAX_INSTRUCTIONS {
        return Err(SeccompError::TooLarge(program.len()));
    }
    Ok(program)
}
