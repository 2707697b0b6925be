//! Terminals: `--console-socket` (the pty master goes to the caller over a
//! Unix socket with `SCM_RIGHTS`, as runc's `docs/terminals.md` describes:
//! containerd's shim and conmon listen there), or, in the foreground without
//! a socket, a relay between our own stdio and the master.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use vmrun_runtime::Stdio;

/// Checks the terminal and console-socket combination like runc, and
/// connects to the socket (before anything is created, so a bad socket
/// fails early).
pub(crate) fn connect_for(
    terminal: bool,
    detach: bool,
    socket: Option<&Path>,
) -> Result<Option<UnixStream>> {
    match (terminal, socket) {
        (true, None) if detach => {
            bail!("cannot allocate tty if vmrun-runtime will detach without setting console socket")
        }
        (false, Some(_)) => {
            bail!("cannot use console socket if vmrun-runtime will not allocate a tty")
        }
        (_, None) => Ok(None),
        (true, Some(path)) => UnixStream::connect(path)
            .map(Some)
            .with_context(|| format!("connecting to console socket {}", path.display())),
    }
}

/// The container process's stdio: a terminal whose master the child sends
/// over the console socket itself (before the process runs, as runc's init
/// does), a terminal relayed by us in the foreground, or our own stdio.
pub(crate) fn stdio(terminal: bool, socket: Option<UnixStream>) -> Stdio {
    match (terminal, socket) {
        (true, Some(socket)) => Stdio::ConsoleSocket(OwnedFd::from(socket)),
        (true, None) => Stdio::Terminal,
        (false, _) => Stdio::Inherit,
    }
}

/// Background threads copying stdin -> master and master -> stdout, for a
/// foreground `run`/`exec` with a terminal and no console socket.
pub(crate) fn relay(master: &OwnedFd) -> Result<Relay> {
    let out = master.try_clone().context("dup terminal")?;
    let input = master.try_clone().context("dup terminal")?;
    let output = std::thread::spawn(move || {
        let mut master = std::fs::File::from(out);
        let mut buf = [0u8; 8192];
        let mut stdout = std::io::stdout();
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = stdout.flush();
        }
    });
    std::thread::spawn(move || {
        let mut master = std::fs::File::from(input);
        let mut buf = [0u8; 8192];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || master.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    Ok(Relay { output })
}

/// The running relay.
pub(crate) struct Relay {
    output: std::thread::JoinHandle<()>,
}

impl Relay {
    /// After the process exited: lets the output thread drain what the
    /// terminal still holds (it ends at EIO once no slave is open), for at
    /// most a second (a background process may keep the slave open).
    pub(crate) fn finish(self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while !self.output.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
