//! The container process's standard streams: inherited, given fds, or a new
//! pseudo-terminal (made inside the container, see [`crate::console`]).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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
    /// A new pty from the container's own `devpts`: the slave (`/dev/pts/N`
    /// in the container) is the process's stdio and controlling terminal
    /// (and, for a container's init, `/dev/console`); the master comes back
    /// in `console`. The spec needs a `devpts` mount on `/dev/pts` (runc's
    /// default: `newinstance,ptmxmode=0666`).
    Terminal,
    /// Like [`Stdio::Terminal`], and the child itself also sends the master
    /// over this connected Unix socket (runc's `--console-socket`) before
    /// the process runs, so whoever listens there has the terminal (and can
    /// size it) before the process starts.
    ConsoleSocket(OwnedFd),
}

/// Stdio prepared in the parent, applied in the child.
#[derive(Debug)]
pub(crate) enum StdioPlan {
    Inherit,
    Fds([OwnedFd; 3]),
    /// Set up by the child inside the container ([`crate::console::setup`]),
    /// the master also sent over the console socket when there is one.
    Terminal(Option<OwnedFd>),
}

impl StdioPlan {
    /// Prepares `stdio` (opens `/dev/null` for a missing stdin).
    pub(crate) fn prepare(stdio: Stdio) -> Result<StdioPlan, RuntimeError> {
        Ok(match stdio {
            Stdio::Inherit => StdioPlan::Inherit,
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
                StdioPlan::Fds([stdin, stdout, stderr])
            }
            Stdio::Terminal => StdioPlan::Terminal(None),
            Stdio::ConsoleSocket(socket) => StdioPlan::Terminal(Some(socket)),
        })
    }

    /// Whether the child makes a terminal.
    pub(crate) fn is_terminal(&self) -> bool {
        matches!(self, StdioPlan::Terminal(_))
    }

    /// The console socket the child sends the master to, if any.
    pub(crate) fn console_socket(&self) -> Option<RawFd> {
        match self {
            StdioPlan::Terminal(Some(socket)) => Some(socket.as_raw_fd()),
            _ => None,
        }
    }

    /// In the child: a new session, then the fds onto 0, 1, 2 (a terminal
    /// comes later, inside the container).
    pub(crate) fn apply(&self) -> Result<(), ChildError> {
        nix::unistd::setsid().map_err(|e| ChildError::sys("setsid", e))?;
        match self {
            StdioPlan::Inherit | StdioPlan::Terminal(_) => Ok(()),
            StdioPlan::Fds(fds) => {
                let raw = [fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()];
                dup_onto_std(raw)
            }
        }
    }
}

/// `dup2`s `fds` onto 0, 1, 2. A source already sitting on a target fd is
/// moved out of the way first, so no stream overwrites another.
pub(crate) fn dup_onto_std(fds: [RawFd; 3]) -> Result<(), ChildError> {
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
