//! Host directories shared into the guest ([`StreamTarget::Share`]): the agent mounts a
//! FUSE file system whose server runs on the host, and only carries the kernel's FUSE
//! messages across vsock: requests from `/dev/fuse` to the host, replies and
//! notifications from the host into `/dev/fuse`. Every FUSE message starts with its own
//! length, so the agent frames nothing and understands nothing of the file system.
//!
//! [`StreamTarget::Share`]: vmrun_agent_protocol::StreamTarget::Share

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use vmrun_agent_protocol::{AgentError, ErrorKind};

use crate::forward::{PendingReturns, ReturnStream};

/// Room for the largest FUSE message either way: a write of up to 256 pages (the
/// kernel's limit) plus headers.
const MAX_MESSAGE: usize = 256 * 4096 + 4096;

/// A mounted share: its `/dev/fuse` and where it is mounted.
pub struct MountedShare {
    fuse: OwnedFd,
    path: PathBuf,
}

/// Mounts share `id` at its path (see `vmrun_agent_protocol::share_path`).
pub fn mount(id: &str, read_only: bool) -> Result<MountedShare, AgentError> {
    if !vmrun_agent_protocol::valid_id(id) {
        return Err(AgentError::new(
            ErrorKind::BadRequest,
            format!("invalid share id {id:?}"),
        ));
    }
    let path = vmrun_agent_protocol::share_path(id);
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        AgentError::new(
            ErrorKind::Internal,
            format!("mounting share {id}: {what}: {e}"),
        )
    };
    std::fs::create_dir_all(&path).map_err(|e| failed("creating the mount point", &e))?;
    let fd = nix::fcntl::open(
        "/dev/fuse",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| failed("opening /dev/fuse", &e))?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let fuse = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut flags = nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV;
    if read_only {
        flags |= nix::mount::MsFlags::MS_RDONLY;
    }
    // `default_permissions`: the guest kernel checks modes against the container's
    // users; `allow_other`: any of them may use it (the server's checks are the host's).
    let data = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions",
        fuse.as_raw_fd()
    );
    nix::mount::mount(
        Some("vmrun-share"),
        &path,
        Some("fuse"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| failed("mount", &e))?;
    Ok(MountedShare { fuse, path })
}

impl MountedShare {
    /// Detaches the mount (the kernel ends the FUSE connection once the last user is
    /// gone; open files then fail).
    pub fn unmount(&self) {
        unmount_path(&self.path);
    }
}

/// Carries share `share`'s FUSE messages until the host closes: replies from `host` into
/// `/dev/fuse`, requests back on the return connection `pending` waits for; then
/// unmounts it.
pub async fn relay<S>(
    host: &mut S,
    share: MountedShare,
    returns: &PendingReturns,
    pending: (u64, oneshot::Receiver<ReturnStream>),
) where
    S: AsyncRead + Unpin,
{
    let Some(mut back) = crate::forward::take_return(returns, pending).await else {
        share.unmount();
        return;
    };
    let path = share.path.clone();
    // SAFETY: the `/dev/fuse` descriptor is owned by the `AsyncFd` from here on and
    // stays open and the same until it is dropped.
    let fuse = match unsafe { AsyncFd::register(share.fuse) } {
        Ok(fuse) => fuse,
        Err(e) => {
            tracing::warn!("watching /dev/fuse: {e}");
            let (fd, _) = e.into_parts();
            MountedShare { fuse: fd, path }.unmount();
            return;
        }
    };
    let ending = tokio::select! {
        r = replies_to_kernel(host, &fuse) => r,
        r = requests_to_host(&fuse, &mut back) => r,
    };
    if let Err(e) = ending {
        tracing::debug!(path = %path.display(), "a share ended: {e}");
    }
    let _ = back.shutdown().await;
    unmount_path(&path);
}

fn unmount_path(path: &Path) {
    if let Err(e) = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        tracing::debug!(path = %path.display(), "unmounting a share: {e}");
    }
    let _ = std::fs::remove_dir(path);
}

/// The host's messages, each written whole into `/dev/fuse`.
async fn replies_to_kernel<S>(host: &mut S, fuse: &AsyncFd<OwnedFd>) -> io::Result<()>
where
    S: AsyncRead + Unpin,
{
    let mut msg = vec![0u8; MAX_MESSAGE];
    loop {
        let len = match host.read_u32_le().await {
            Ok(len) => len as usize,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if !(16..=MAX_MESSAGE).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a FUSE message of {len} bytes from the host"),
            ));
        }
        msg[..4].copy_from_slice(&(len as u32).to_le_bytes());
        host.read_exact(&mut msg[4..len]).await?;
        loop {
            let mut ready = fuse.writable().await?;
            let wrote = ready.try_io(|fd| {
                // SAFETY: writes `len` initialised bytes of `msg` to the open /dev/fuse.
                let n = unsafe { libc::write(fd.as_raw_fd(), msg.as_ptr().cast(), len) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match wrote {
                // ENOENT: the request was interrupted meanwhile; the kernel drops the reply.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOENT) => break,
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(()),
                Ok(result) => {
                    if let Err(e) = result {
                        tracing::debug!("a FUSE reply was refused: {e}");
                    }
                    break;
                }
                Err(_would_block) => continue,
            }
        }
    }
}

/// The kernel's requests, one per read of `/dev/fuse`, to the host.
async fn requests_to_host(fuse: &AsyncFd<OwnedFd>, back: &mut ReturnStream) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let mut ready = fuse.readable().await?;
        let read = ready.try_io(|fd| {
            // SAFETY: reads at most `buf.len()` bytes into `buf`, writable memory of that
            // length; the descriptor is the open /dev/fuse.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        });
        let n = match read {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(n)) => n,
            // Unmounted: the file system is gone.
            Ok(Err(e)) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(()),
            // Interrupted before it was read: nothing to pass on.
            Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        };
        back.write_all(&buf[..n]).await?;
    }
}
