//! The container's first process, between fork and exec (child side only).
//!
//! Order: session and stdio, cgroup (v1: the child joins by itself),
//! namespaces, rootfs mounts (waiting for the parent's cgroup setup and
//! making the cgroup namespace only before the first cgroup mount or
//! pivot_root, so the mounts overlap with the parent's work), pivot_root,
//! terminal (a pty of the container's devpts, sent to the parent), hostname,
//! sysctls/masks, then (create) report ready and wait for `start`, or (run)
//! go straight on to the process setup and exec. Every failure is sent to
//! whoever waits on the channel.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sched::{unshare, CloneFlags};

use crate::error::ChildError;
use crate::namespaces::{self, NamespacePlan};
use crate::process::ProcessPlan;
use crate::rootfs::{self, RootfsPlan};
use crate::stdio::StdioPlan;
use crate::sync::{Message, SyncSocket};

/// Everything the init child needs, prepared by the parent.
#[derive(Debug)]
pub(crate) struct InitPlan {
    pub(crate) namespaces: NamespacePlan,
    pub(crate) stdio: StdioPlan,
    pub(crate) rootfs: RootfsPlan,
    pub(crate) process: ProcessPlan,
    pub(crate) hostname: Option<String>,
    pub(crate) domainname: Option<CString>,
    /// Child's end of the sync channel.
    pub(crate) sync: SyncSocket,
    /// `Some` for create: the start socket to wait on.
    pub(crate) start_listener: Option<OwnedFd>,
    /// cgroup v1 `tasks` files to join by writing `0` (empty: the parent moves us).
    pub(crate) cgroup_tasks: Vec<OwnedFd>,
}

/// Leaves the child without running the caller's exit handlers.
pub(crate) fn exit_child(code: i32) -> ! {
    // SAFETY: _exit never returns and is always safe to call.
    unsafe { libc::_exit(code) }
}

/// The child's body; never returns.
pub(crate) fn run(plan: &InitPlan) -> ! {
    if let Err(e) = prepare(plan) {
        plan.sync.send_error(&e);
        exit_child(1);
    }
    let start_conn;
    let channel = match &plan.start_listener {
        None => &plan.sync,
        Some(listener) => {
            if plan.sync.send_ready().is_err() {
                exit_child(1);
            }
            match crate::start_socket::accept(listener.as_raw_fd()) {
                Ok(conn) => {
                    start_conn = conn;
                    &start_conn
                }
                Err(_) => exit_child(1),
            }
        }
    };
    let error = plan.process.finish_and_exec();
    channel.send_error(&error);
    exit_child(127)
}

/// Waits for the parent's go-ahead (sent once the cgroup is set up).
pub(crate) fn wait_for_parent(sync: &SyncSocket) -> Result<(), ChildError> {
    match sync.recv() {
        Ok(Message::Go) => Ok(()),
        _ => Err(ChildError::Setup(
            "the runtime went away during setup".into(),
        )),
    }
}

fn prepare(plan: &InitPlan) -> Result<(), ChildError> {
    plan.stdio.apply()?;
    crate::cgroup::join_self(&plan.cgroup_tasks)?;
    let mut keep: Vec<RawFd> = plan.namespaces.fds().collect();
    keep.push(plan.sync.raw());
    keep.extend(plan.start_listener.as_ref().map(|l| l.as_raw_fd()));
    keep.extend(plan.stdio.console_socket());
    close_fds_except(&mut keep);
    namespaces::enter(&plan.namespaces)?;
    // The parent finishes the cgroup meanwhile; wait for it only where it
    // matters (cgroup namespace, cgroup mount, pivot_root), so the mounts
    // overlap with its cgroup writes. The cgroup namespace is made after
    // that, so its root is the container's cgroup.
    let mut in_cgroup = false;
    let mut ensure_in_cgroup = || -> Result<(), ChildError> {
        if !in_cgroup {
            wait_for_parent(&plan.sync)?;
            if plan.namespaces.new_cgroup {
                unshare(CloneFlags::CLONE_NEWCGROUP)
                    .map_err(|e| ChildError::sys("unshare cgroup namespace", e))?;
            }
            in_cgroup = true;
        }
        Ok(())
    };
    plan.rootfs.prepare(&mut ensure_in_cgroup)?;
    ensure_in_cgroup()?;
    rootfs::pivot(&plan.rootfs.rootfs)?;
    if plan.stdio.is_terminal() {
        crate::console::setup(
            &plan.sync,
            true,
            plan.process.console_size(),
            plan.stdio.console_socket(),
        )?;
    }
    if let Some(name) = &plan.hostname {
        nix::unistd::sethostname(name).map_err(|e| ChildError::sys("sethostname", e))?;
    }
    if let Some(name) = &plan.domainname {
        // SAFETY: name is a valid C string of the given length.
        let rc = unsafe { libc::setdomainname(name.as_ptr(), name.as_bytes().len()) };
        nix::errno::Errno::result(rc).map_err(|e| ChildError::sys("setdomainname", e))?;
    }
    plan.rootfs.finish()
}

/// Closes every fd from 3 up except `keep`, so a child waiting for `start`
/// holds no copies of the caller's other fds (pipes would never see EOF).
pub(crate) fn close_fds_except(keep: &mut [RawFd]) {
    keep.sort_unstable();
    let mut from: u32 = 3;
    for &fd in keep.iter() {
        let Ok(fd) = u32::try_from(fd) else { continue };
        if fd < from {
            continue;
        }
        if fd > from {
            // SAFETY: close_range with integer arguments only.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0u32) };
        }
        from = fd + 1;
    }
    // SAFETY: close_range with integer arguments only.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32) };
}
