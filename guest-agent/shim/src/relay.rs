//! Moving bytes: the process's output to the log and to attached clients; clients' input
//! to the process's stdin.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::sync::broadcast;
use vmrun_shim::frame::Stream;
use vmrun_shim::logfile::{LogFile, LogWriter};

/// Output chunks fanned out to attached clients.
pub type OutputTx = broadcast::Sender<(Stream, Bytes)>;

/// Enough for bursts; a client that falls further behind loses output, like docker's
/// non-blocking log mode, and never stalls the container.
pub const OUTPUT_BACKLOG: usize = 4096;

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

/// An fd registered with the event loop for non-blocking reads and writes.
pub struct AsyncPipe(AsyncFd<OwnedFd>);

impl AsyncPipe {
    /// Register `fd`, switching it to non-blocking mode.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(&fd)?;
        // SAFETY: `fd` is an `OwnedFd` moved into the `AsyncFd`: it is open, owned by no one
        // else, and stays open and the same descriptor until the `AsyncFd` is dropped.
        let registered = unsafe { AsyncFd::register(fd) };
        Ok(AsyncPipe(
            registered.map_err(|e| io::Error::other(e.to_string()))?,
        ))
    }

    /// Read some bytes; `Ok(0)` at end of stream (a pty's EIO counts as the end).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_raw_fd(), buf).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Write all of `data`.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.0.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

/// Read one output fd to its end, logging and broadcasting every chunk.
pub async fn pump_output(
    fd: OwnedFd,
    stream: Stream,
    log: Option<Arc<Mutex<LogWriter<LogFile>>>>,
    tx: OutputTx,
) {
    let pipe = match AsyncPipe::new(fd) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("watching {}: {e}", stream.name());
            return;
        }
    };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                let chunk = Bytes::copy_from_slice(&buf[..n]);
                if let Some(log) = &log {
                    if let Ok(mut w) = log.lock() {
                        if let Err(e) = w.write(stream, &chunk) {
                            tracing::warn!("writing the log: {e}");
                        }
                    }
                }
                // No receivers is fine: nobody is attached.
                let _ = tx.send((stream, chunk));
            }
            Err(e) => {
                tracing::warn!("reading {}: {e}", stream.name());
                break;
            }
        }
    }
}
