//! The container's terminal, made like runc's `--console-socket`: inside the
//! container, from the container's own `devpts` (child side only).
//!
//! After the mounts and `pivot_root` (or, for exec, after joining the mount
//! namespace) the child opens the container's `/dev/pts/ptmx`, unlocks the
//! pty, opens the slave (`/dev/pts/N` as the container sees it), makes it
//! its controlling terminal and stdio, binds it onto `/dev/console` (init
//! only), and sends the master to the parent over the sync channel. The
//! process then sees `/dev/pts/0` like under docker, and window sizes the
//! caller sets on the master reach it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use crate::error::ChildError;
use crate::mounts::{create_mount_point, do_mount};
use crate::sync::SyncSocket;

/// Where the multiplexer is found, in order: the container's devpts
/// instance, then the `/dev/ptmx` link to it.
const PTMX_PATHS: [&str; 2] = ["/dev/pts/ptmx", "/dev/ptmx"];

fn open_fd(path: &Path, flags: OFlag) -> Result<OwnedFd, ChildError> {
    let fd = open(path, flags, Mode::empty())
        .map_err(|e| ChildError::Setup(format!("open {}: {}", path.display(), e.desc())))?;
    // SAFETY: open returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_ptmx() -> Result<OwnedFd, ChildError> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let mut last = None;
    for path in PTMX_PATHS {
        match open_fd(Path::new(path), flags) {
            Ok(fd) => return Ok(fd),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ChildError::Setup("no ptmx".into())))
}

/// In the child, in the container's mount namespace (after `pivot_root` for
/// init): creates the pty, makes the slave the controlling terminal and
/// stdio, optionally binds it onto `/dev/console`, and sends the master
/// over `sync`. The caller must be a session leader without a terminal.
pub(crate) fn setup(sync: &SyncSocket, bind_console: bool) -> Result<(), ChildError> {
    let master = open_ptmx()?;
    let sys = |what: &'static str| move |e: Errno| ChildError::sys(what, e);
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int through the pointer, which lives across the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    Errno::result(rc).map_err(sys("unlockpt"))?;
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int through the pointer, which lives across the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) };
    Errno::result(rc).map_err(sys("ptsname"))?;
    let slave_path = format!("/dev/pts/{number}");
    let slave = open_fd(
        Path::new(&slave_path),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
    )?;
    // SAFETY: TIOCSCTTY takes an int argument; the fd is an open tty.
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(rc).map_err(sys("set controlling terminal"))?;
    let fd = slave.as_raw_fd();
    crate::stdio::dup_onto_std([fd, fd, fd])?;
    if fd > 2 {
        drop(slave);
    } else {
        // The slave sits on a std fd now (dup_onto_std cleared its CLOEXEC).
        std::mem::forget(slave);
    }
    if bind_console {
        let console = Path::new("/dev/console");
        create_mount_point(console, true)?;
        do_mount(
            Some(Path::new(&slave_path)),
            console,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    sync.send_console(master.as_raw_fd())
        .map_err(sys("send the terminal to the runtime"))
}
