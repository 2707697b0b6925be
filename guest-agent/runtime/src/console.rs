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

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
/// init): creates the pty (sized `size`, rows and columns, when given:
/// `process.consoleSize`, set before the process runs, as runc does),
/// makes the slave the controlling terminal and stdio, optionally binds it
/// onto `/dev/console`, and sends the master over `sync`. The caller must
/// be a session leader without a terminal.
pub(crate) fn setup(
    sync: &SyncSocket,
    bind_console: bool,
    size: Option<(u16, u16)>,
    console_socket: Option<RawFd>,
) -> Result<(), ChildError> {
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
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize through the pointer, which lives across the call.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        Errno::result(rc).map_err(sys("set terminal size"))?;
    }
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
    if let Some(socket) = console_socket {
        send_to_console_socket(socket, master.as_raw_fd())?;
        if size.is_none() && !bind_console {
            wait_for_size(&master);
        }
    }
    sync.send_console(master.as_raw_fd())
        .map_err(sys("send the terminal to the runtime"))
}

/// How long an exec'd process waits for the console socket's receiver to
/// size its terminal.
const SIZE_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// For an exec: conmon sizes the terminal as soon as it receives the master
/// (podman passes no `consoleSize`), but an exec'd process reaches `execve`
/// within microseconds of sending it, and a program that reads its size at
/// once (`stty size`) would see 0x0. runc's init, slower, wins that race in
/// practice; here the process waits until the terminal has a size, at most
/// [`SIZE_WAIT`] (receivers that size it later, like containerd's shim, pay
/// that once per TTY exec).
fn wait_for_size(master: &OwnedFd) {
    let deadline = std::time::Instant::now() + SIZE_WAIT;
    loop {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes a winsize through the pointer, which lives across the call.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
        if rc != 0 || ws.ws_row != 0 || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// Sends the master over runc's console socket: one message whose payload
/// is the master's name, the fd in `SCM_RIGHTS`.
fn send_to_console_socket(socket: RawFd, master: RawFd) -> Result<(), ChildError> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [master];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
    loop {
        match sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => {
                return Err(ChildError::sys(
                    "send the terminal to the console socket",
                    e,
                ))
            }
        }
    }
}
