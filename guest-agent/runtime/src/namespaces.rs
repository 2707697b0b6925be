//! Namespaces: which to create, which to join, and forking into a PID namespace.
//!
//! New namespaces other than PID are made by `unshare` in the child. The PID
//! namespace is special: `unshare(CLONE_NEWPID)`/`setns` only change where the
//! caller's *next* child goes. So the calling thread switches its
//! `pid_for_children`, forks, and switches back at once: the container's
//! process is then PID 1 (or a member) of its namespace *and* a direct child
//! of the caller, with one `fork` (glibc's, so the child may allocate even
//! when the caller is multi-threaded).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::error::RuntimeError;

/// Where the container's processes live, PID-wise.
#[derive(Debug)]
pub(crate) enum PidNamespace {
    /// The caller's.
    Inherit,
    /// A fresh one; the container's process is its PID 1.
    New,
    /// An existing one (an open `/proc/<pid>/ns/pid` or a `path`).
    Join(OwnedFd),
}

/// The namespace part of a container (or exec) plan.
#[derive(Debug)]
pub(crate) struct NamespacePlan {
    /// Flags for `unshare` in the child (never `CLONE_NEWPID`, `CLONE_NEWCGROUP`).
    pub(crate) unshare: CloneFlags,
    /// A new cgroup namespace, made after the child is in its cgroup.
    pub(crate) new_cgroup: bool,
    /// Namespaces to `setns` into in the child, mount namespace last.
    pub(crate) join: Vec<(OwnedFd, CloneFlags)>,
    /// The PID namespace, handled at fork.
    pub(crate) pid: PidNamespace,
}

impl NamespacePlan {
    /// The plan for `linux.namespaces` of a spec.
    pub(crate) fn from_spec(namespaces: &[LinuxNamespace]) -> Result<Self, RuntimeError> {
        let mut plan = NamespacePlan {
            unshare: CloneFlags::empty(),
            new_cgroup: false,
            join: Vec::new(),
            pid: PidNamespace::Inherit,
        };
        let mut mount_join = None;
        for ns in namespaces {
            let flag = clone_flag(ns.typ())?;
            match (ns.typ(), ns.path()) {
                (LinuxNamespaceType::Pid, None) => plan.pid = PidNamespace::New,
                (LinuxNamespaceType::Pid, Some(path)) => {
                    plan.pid = PidNamespace::Join(open_namespace(path)?)
                }
                (LinuxNamespaceType::Cgroup, None) => plan.new_cgroup = true,
                (LinuxNamespaceType::Mount, Some(path)) => {
                    mount_join = Some((open_namespace(path)?, flag))
                }
                (_, Some(path)) => plan.join.push((open_namespace(path)?, flag)),
                (_, None) => plan.unshare |= flag,
            }
        }
        plan.join.extend(mount_join);
        Ok(plan)
    }

    /// The plan to enter every namespace of a running process that differs
    /// from the caller's (used by exec).
    pub(crate) fn of_process(pid: Pid) -> Result<Self, RuntimeError> {
        let mut plan = NamespacePlan {
            unshare: CloneFlags::empty(),
            new_cgroup: false,
            join: Vec::new(),
            pid: PidNamespace::Inherit,
        };
        // Mount last: after it, paths resolve in the container.
        let kinds = [
            ("user", CloneFlags::CLONE_NEWUSER),
            ("ipc", CloneFlags::CLONE_NEWIPC),
            ("uts", CloneFlags::CLONE_NEWUTS),
            ("net", CloneFlags::CLONE_NEWNET),
            ("cgroup", CloneFlags::CLONE_NEWCGROUP),
            ("pid", CloneFlags::CLONE_NEWPID),
            ("mnt", CloneFlags::CLONE_NEWNS),
        ];
        for (name, flag) in kinds {
            let theirs = format!("/proc/{pid}/ns/{name}");
            let ours = format!("/proc/self/ns/{name}");
            let (Ok(theirs_stat), Ok(ours_stat)) = (
                nix::sys::stat::stat(theirs.as_str()),
                nix::sys::stat::stat(ours.as_str()),
            ) else {
                continue; // namespace kind not supported by this kernel
            };
            if theirs_stat.st_ino == ours_stat.st_ino && theirs_stat.st_dev == ours_stat.st_dev {
                continue;
            }
            let fd = open_namespace(Path::new(&theirs))?;
            if flag == CloneFlags::CLONE_NEWPID {
                plan.pid = PidNamespace::Join(fd);
            } else {
                plan.join.push((fd, flag));
            }
        }
        Ok(plan)
    }

    /// Whether the container gets a mount namespace of its own.
    pub(crate) fn has_new_mount_ns(&self) -> bool {
        self.unshare.contains(CloneFlags::CLONE_NEWNS)
    }
}

fn clone_flag(typ: LinuxNamespaceType) -> Result<CloneFlags, RuntimeError> {
    Ok(match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::User => {
            return Err(RuntimeError::InvalidSpec(
                "user namespaces are not supported yet".into(),
            ))
        }
        LinuxNamespaceType::Time => {
            return Err(RuntimeError::InvalidSpec(
                "time namespaces are not supported".into(),
            ))
        }
    })
}

fn open_namespace(path: &Path) -> Result<OwnedFd, RuntimeError> {
    open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map(|fd| {
            // SAFETY: open returned a new fd that nothing else owns.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        })
        .map_err(|e| RuntimeError::sys(format!("open namespace {}", path.display()), e))
}

/// Forks; the child runs `child` (which should exec or exit; if it returns,
/// the child exits with 127) inside the PID
/// namespace `pid`, and is a direct child of the caller. Returns the child's
/// pid as the caller sees it.
pub(crate) fn fork_into(pid: &PidNamespace, child: impl FnOnce()) -> Result<Pid, RuntimeError> {
    let restore = match pid {
        PidNamespace::Inherit => None,
        PidNamespace::New | PidNamespace::Join(_) => {
            let own = open_namespace(Path::new("/proc/thread-self/ns/pid"))?;
            match pid {
                PidNamespace::Join(fd) => setns(fd.as_fd(), CloneFlags::CLONE_NEWPID)
                    .map_err(|e| RuntimeError::sys("setns pid namespace", e))?,
                _ => unshare(CloneFlags::CLONE_NEWPID)
                    .map_err(|e| RuntimeError::sys("unshare pid namespace", e))?,
            }
            Some(own)
        }
    };
    // SAFETY: the child only runs `child`, which ends in exec or _exit; glibc's
    // fork keeps malloc usable in the child.
    let forked = unsafe { fork() };
    let forked = match forked {
        Ok(ForkResult::Child) => {
            child();
            crate::init::exit_child(127)
        }
        Ok(ForkResult::Parent { child }) => Ok(child),
        Err(e) => Err(e),
    };
    if let Some(own) = restore {
        // Back to the caller's own namespace for its later children. Setting the
        // active namespace is always allowed.
        if let Err(e) = setns(own.as_fd(), CloneFlags::CLONE_NEWPID) {
            tracing::error!(fd = own.as_raw_fd(), "restoring pid namespace: {e}");
        }
    }
    forked.map_err(|e| RuntimeError::sys("fork", e))
}

/// In the child: joins and creates namespaces (all but PID and cgroup).
pub(crate) fn enter(plan: &NamespacePlan) -> Result<(), crate::error::ChildError> {
    for (fd, flag) in &plan.join {
        setns(fd.as_fd(), *flag).map_err(|e| crate::error::ChildError::sys("setns", e))?;
    }
    if !plan.unshare.is_empty() {
        unshare(plan.unshare).map_err(|e| crate::error::ChildError::sys("unshare", e))?;
    }
    Ok(())
}

impl NamespacePlan {
    /// The fds the child still needs for `setns`.
    pub(crate) fn fds(&self) -> impl Iterator<Item = std::os::fd::RawFd> + '_ {
        self.join.iter().map(|(fd, _)| fd.as_raw_fd())
    }
}
