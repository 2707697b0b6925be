//! The container process's standard streams: inherited, given fds, or a new
//! pseudo-terminal.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::fcntl::{fcntl, open, FcntlArg, FdFlag, OFlag};
use nix::sys::stat::Mode;

use crate::error::{ChildError, RuntimeError};

/// How the container's process gets its stdin, stdout and stderr.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's own fds 0, 1, 2.
    #[default]
    Inherit,
    /// These fds (`stdin: None` reads from `/dev/null`).
    Fds {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A new pty: the slave is the process's stdio and controlling terminal;
    /// the master comes back in `console`.
    Terminal,
}

/// Stdio prepared in the parent, applied in the child.
#[derive(Debug)]
pub(crate) enum StdioPlan {
    Inherit,
    Fds([OwnedFd; 3]),
    Terminal {
        slave: OwnedFd,
        /// Host path of the slave (`/dev/pts/N`), for `/dev/console`.
        slave_path: PathBuf,
    },
}

impl StdioPlan {
    /// Prepares `stdio`; for a terminal also returns the master.
    pub(crate) fn prepare(stdio: Stdio) -> Result<(StdioPlan, Option<OwnedFd>), RuntimeError> {
        Ok(match stdio {
            Stdio::Inherit => (StdioPlan::Inherit, None),
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => {
                let stdin = match stdin {
                    Some(fd) => fd,
                    None => {
                        let fd = open(
                            "/dev/null",
                            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                            Mode::empty(),
                        )
                        .map_err(|e| RuntimeError::sys("open /dev/null", e))?;
                        // SAFETY: open returned a new fd that nothing else owns.
                        unsafe { OwnedFd::from_raw_fd(fd) }
                    }
                };
                (StdioPlan::Fds([stdin, stdout, stderr]), None)
            }
            Stdio::Terminal => {
                let pty =
                    nix::pty::openpty(None, None).map_err(|e| RuntimeError::sys("openpty", e))?;
                for fd in [&pty.master, &pty.slave] {
                    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
                        .map_err(|e| RuntimeError::sys("fcntl pty", e))?;
                }
                let slave_path =
                    std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
                        .map_err(|e| RuntimeError::io("resolve pty slave", "/proc/self/fd", e))?;
                (
                    StdioPlan::Terminal {
                        slave: pty.slave,
                        slave_path,
                    },
                    Some(pty.master),
                )
            }
        })
    }

    /// In the child: a new session, then the fds onto 0, 1, 2 (and the
    /// terminal as controlling tty).
    pub(crate) fn apply(&self) -> Result<(), ChildError> {
        nix::unistd::setsid().map_err(|e| ChildError::sys("setsid", e))?;
        match self {
            StdioPlan::Inherit => Ok(()),
            StdioPlan::Fds(fds) => {
                let raw = [fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()];
                dup_onto_std(raw)
            }
            StdioPlan::Terminal { slave, .. } => {
                let fd = slave.as_raw_fd();
                // SAFETY: TIOCSCTTY takes an int argument; fd is an open tty.
                let rc = unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
                nix::errno::Errno::result(rc)
                    .map_err(|e| ChildError::sys("set controlling terminal", e))?;
                dup_onto_std([fd, fd, fd])
            }
        }
    }
}

/// `dup2`s `fds` onto 0, 1, 2. A source already sitting on a target fd is
/// moved out of the way first, so no stream overwrites another.
fn dup_onto_std(fds: [RawFd; 3]) -> Result<(), ChildError> {
    let mut fds = fds;
    for (i, fd) in fds.iter_mut().enumerate() {
        if *fd < 3 && *fd != i as RawFd {
            *fd =
                fcntl(*fd, FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(|e| ChildError::sys("dup", e))?;
        }
    }
    for (target, fd) in fds.iter().enumerate() {
        let target = target as RawFd;
        if *fd == target {
            // dup2 onto itself keeps CLOEXEC: clear it.
            fcntl(*fd, FcntlArg::F_SETFD(FdFlag::empty()))
                .map_err(|e| ChildError::sys("fcntl", e))?;
        } else {
            nix::unistd::dup2(*fd, target).map_err(|e| ChildError::sys("dup2", e))?;
        }
    }
    Ok(())
}
