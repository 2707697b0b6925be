//! The container's process: prepared in the parent ([`ProcessPlan::from_spec`]),
//! finished in the child ([`ProcessPlan::finish_and_exec`]): rlimits, cwd,
//! user, capabilities, no_new_privs, seccomp, `$PATH` lookup, exec.

use std::ffi::CString;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::resource::{setrlimit, Resource};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{LinuxCapabilities, PosixRlimitType, Process};

use crate::error::{ChildError, RuntimeError};
use crate::security::CompiledSeccomp;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process half of a container or exec plan.
#[derive(Debug)]
pub(crate) struct ProcessPlan {
    /// `args[0]` as given, for error messages.
    name: String,
    /// Paths to try with `execve`, in order (the `$PATH` lookup, unrolled).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: PathBuf,
    create_cwd: bool,
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    umask: Option<u32>,
    no_new_privileges: bool,
    capabilities: Option<LinuxCapabilities>,
    seccomp: Option<CompiledSeccomp>,
    rlimits: Vec<(Resource, u64, u64)>,
    oom_score_adj: Option<i32>,
    /// `process.consoleSize` (rows, columns): the terminal's first size.
    console_size: Option<(u16, u16)>,
}

fn cstring(what: &str, s: &str) -> Result<CString, RuntimeError> {
    CString::new(s).map_err(|_| RuntimeError::InvalidSpec(format!("{what} contains a NUL byte")))
}

impl ProcessPlan {
    /// `create_cwd`: make a missing cwd (container init, like docker); exec
    /// fails on a missing one instead.
    pub(crate) fn from_spec(
        process: &Process,
        seccomp: Option<CompiledSeccomp>,
        create_cwd: bool,
    ) -> Result<Self, RuntimeError> {
        let args = process.args().as_deref().unwrap_or_default();
        let name = args
            .first()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| RuntimeError::InvalidSpec("process.args is empty".into()))?
            .clone();
        let env = process.env().as_deref().unwrap_or_default();
        let path_var = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        let candidates = if name.contains('/') {
            vec![cstring("process.args", &name)?]
        } else {
            path_var
                .split(':')
                .map(|dir| {
                    let dir = if dir.is_empty() { "." } else { dir };
                    cstring("PATH", &format!("{}/{name}", dir.trim_end_matches('/')))
                })
                .collect::<Result<_, _>>()?
        };
        let cwd = process.cwd().clone();
        if !cwd.is_absolute() {
            return Err(RuntimeError::InvalidSpec(format!(
                "process.cwd {} is not absolute",
                cwd.display()
            )));
        }
        let user = process.user();
        let rlimits = process
            .rlimits()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|r| (rlimit_resource(r.typ()), r.soft(), r.hard()))
            .collect();
        Ok(ProcessPlan {
            name,
            candidates,
            argv: args
                .iter()
                .map(|a| cstring("process.args", a))
                .collect::<Result<_, _>>()?,
            envp: env
                .iter()
                .map(|e| cstring("process.env", e))
                .collect::<Result<_, _>>()?,
            cwd,
            create_cwd,
            uid: Uid::from_raw(user.uid()),
            gid: Gid::from_raw(user.gid()),
            groups: user
                .additional_gids()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|g| Gid::from_raw(*g))
                .collect(),
            umask: user.umask(),
            no_new_privileges: process.no_new_privileges().unwrap_or(false),
            capabilities: process
                .capabilities()
                .as_ref()
                .map(crate::security::normalize_capabilities),
            seccomp,
            rlimits,
            oom_score_adj: process.oom_score_adj(),
            console_size: process.console_size().and_then(|b| {
                let rows = u16::try_from(b.height()).ok()?;
                let cols = u16::try_from(b.width()).ok()?;
                (rows > 0 && cols > 0).then_some((rows, cols))
            }),
        })
    }

    /// The terminal size the spec asks for (`process.consoleSize`), rows and columns.
    pub(crate) fn console_size(&self) -> Option<(u16, u16)> {
        self.console_size
    }

    /// In the child, after namespaces and rootfs: the last steps, then exec.
    /// Returns only on failure.
    pub(crate) fn finish_and_exec(&self) -> ChildError {
        match self.finish() {
            Ok(()) => self.exec(),
            Err(e) => e,
        }
    }

    /// The order follows runc: seccomp needs `no_new_privs` or
    /// CAP_SYS_ADMIN. Without `noNewPrivileges` the filter is loaded while
    /// the process still has all capabilities, before the user switch and
    /// the capability drop; with it, `no_new_privs` is set after the
    /// capabilities and the filter loaded last, just before exec (so the
    /// filter never has to allow the setup's own system calls).
    fn finish(&self) -> Result<(), ChildError> {
        for &(resource, soft, hard) in &self.rlimits {
            setrlimit(resource, soft, hard).map_err(|e| ChildError::sys("setrlimit", e))?;
        }
        if let Some(adj) = self.oom_score_adj {
            std::fs::write("/proc/self/oom_score_adj", adj.to_string())
                .map_err(|e| ChildError::Setup(format!("write oom_score_adj: {e}")))?;
        }
        if self.create_cwd {
            std::fs::create_dir_all(&self.cwd).map_err(|e| {
                ChildError::Setup(format!("create cwd {}: {e}", self.cwd.display()))
            })?;
        }
        nix::unistd::chdir(&self.cwd).map_err(|e| {
            ChildError::Setup(format!(
                "chdir to cwd ({}): {}",
                self.cwd.display(),
                e.desc()
            ))
        })?;
        if let Some(mask) = self.umask {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        }
        reset_signals();
        // No fd of the caller may leak into the container.
        // SAFETY: close_range with integer arguments only.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if !self.no_new_privileges {
            if let Some(filter) = &self.seccomp {
                crate::security::apply_seccomp(filter)?;
            }
        }
        // Capabilities survive the switch to a non-root user only with
        // keep-caps, and only when the spec lists some (an absent
        // `capabilities` leaves the user with none, as setuid makes it).
        let keep_caps = !self.uid.is_root() && self.capabilities.is_some();
        if keep_caps {
            crate::security::set_keep_caps(true)?;
        }
        setgroups(&self.groups).map_err(|e| ChildError::sys("setgroups", e))?;
        setresgid(self.gid, self.gid, self.gid).map_err(|e| ChildError::sys("setresgid", e))?;
        setresuid(self.uid, self.uid, self.uid).map_err(|e| ChildError::sys("setresuid", e))?;
        if keep_caps {
            crate::security::set_keep_caps(false)?;
        }
        if let Some(caps) = &self.capabilities {
            crate::security::apply_capabilities(caps)?;
        }
        if self.no_new_privileges {
            crate::security::set_no_new_privs()?;
            if let Some(filter) = &self.seccomp {
                crate::security::apply_seccomp(filter)?;
            }
        }
        Ok(())
    }

    /// `execve` each candidate like `execvp`; the error says why none ran.
    fn exec(&self) -> ChildError {
        let mut denied = false;
        for path in &self.candidates {
            let Err(errno) = nix::unistd::execve(path, &self.argv, &self.envp);
            match errno {
                Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::ENAMETOOLONG => {}
                Errno::EACCES => denied = true,
                other => return ChildError::Exec(self.name.clone(), other.desc().to_owned()),
            }
        }
        if denied {
            ChildError::PermissionDenied(self.name.clone())
        } else {
            ChildError::NotFound(self.name.clone())
        }
    }
}

/// Unblocks all signals and restores the default action of ignored ones
/// (Rust ignores SIGPIPE; handlers are reset by exec anyway).
fn reset_signals() {
    use nix::sys::signal::{
        sigaction, sigprocmask, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
    };
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installs the default action, no handler function involved.
        unsafe {
            let _ = sigaction(signal, &default);
        }
    }
}

fn rlimit_resource(typ: PosixRlimitType) -> Resource {
    match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}
