//! A container's network inside the VM ([`StreamTarget::Network`]): its `eth0` (a TAP
//! device, [`crate::tap`]) and the two host connections its frames travel on, framed as
//! `vmrun_agent_protocol::network` says. The device goes when the host closes its
//! connection, or when the return connection fails.
//!
//! [`StreamTarget::Network`]: vmrun_agent_protocol::StreamTarget::Network

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use vmrun_agent_protocol::network::{GuestNetwork, MAX_ETHERNET_FRAME};
use vmrun_agent_protocol::{AgentError, ErrorKind};

use crate::forward::{PendingReturns, ReturnStream};

/// Makes `eth0` in process `pid`'s network namespace.
pub async fn make_device(pid: i32, network: GuestNetwork) -> Result<OwnedFd, AgentError> {
    crate::netns::in_netns(pid, move || crate::tap::create(&network))
        .await
        .map_err(|e| {
            AgentError::new(
                ErrorKind::Internal,
                format!("setting up the container's eth0: {e}"),
            )
        })
}

/// Moves frames between the TAP `tap` and the host until either side ends: frames from
/// `host` go to the container, the container's go back on the return connection
/// `pending` waits for.
pub async fn relay<S>(
    host: &mut S,
    tap: OwnedFd,
    returns: &PendingReturns,
    pending: (u64, oneshot::Receiver<ReturnStream>),
) where
    S: AsyncRead + Unpin,
{
    let Some(mut back) = crate::forward::take_return(returns, pending).await else {
        return;
    };
    // SAFETY: `tap` is an open descriptor that the `AsyncFd` owns from here on; nothing
    // closes or replaces it while registered (an `OwnedFd` always names the same one).
    let tap = match unsafe { AsyncFd::register(tap) } {
        Ok(tap) => tap,
        Err(e) => {
            tracing::warn!("watching a container's TAP device: {e}");
            return;
        }
    };
    let ending = tokio::select! {
        r = to_container(host, &tap) => r,
        r = to_host(&tap, &mut back) => r,
    };
    if let Err(e) = ending {
        tracing::debug!("a container's network ended: {e}");
    }
    let _ = back.shutdown().await;
}

/// Frames from the host, written to the TAP device.
async fn to_container<S>(host: &mut S, tap: &AsyncFd<OwnedFd>) -> io::Result<()>
where
    S: AsyncRead + Unpin,
{
    let mut frame = vec![0u8; MAX_ETHERNET_FRAME];
    loop {
        let len = match host.read_u32().await {
            Ok(len) => len as usize,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if len > MAX_ETHERNET_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a frame of {len} bytes from the host (at most {MAX_ETHERNET_FRAME})"),
            ));
        }
        host.read_exact(&mut frame[..len]).await?;
        loop {
            let mut ready = tap.writable().await?;
            let wrote = ready.try_io(|fd| {
                // SAFETY: writes `len` initialised bytes of `frame` to the TAP
                // descriptor, which `tap` keeps open.
                let n = unsafe { libc::write(fd.as_raw_fd(), frame.as_ptr().cast(), len) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match wrote {
                Ok(result) => {
                    // A frame the device refuses (say, too large) is dropped, as a wire would.
                    if let Err(e) = result {
                        tracing::debug!("a frame for the container was dropped: {e}");
                    }
                    break;
                }
                Err(_would_block) => continue,
            }
        }
    }
}

/// Frames the container sends, each with its length, to the host.
async fn to_host(tap: &AsyncFd<OwnedFd>, back: &mut ReturnStream) -> io::Result<()> {
    let mut buf = vec![0u8; 4 + MAX_ETHERNET_FRAME];
    loop {
        let mut ready = tap.readable().await?;
        let read = ready.try_io(|fd| {
            let room = &mut buf[4..];
            // SAFETY: reads at most `room.len()` bytes into `room`, which is writable
            // memory of that length; the descriptor is the open TAP.
            let n = unsafe { libc::read(fd.as_raw_fd(), room.as_mut_ptr().cast(), room.len()) };
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        });
        let n = match read {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        };
        let len = u32::try_from(n).unwrap_or(u32::MAX);
        buf[..4].copy_from_slice(&len.to_be_bytes());
        back.write_all(&buf[..4 + n]).await?;
    }
}
