//! Host directories shared into containers in VMs (`-v /host/dir:/ctr/dir[:ro]`, and in
//! per-container VMs named volumes too, which are host directories): a FUSE file system
//! whose server runs here (`vmrun_fileshare`, confined to the directory, `:ro` refused on
//! this side) while the guest kernel's FUSE messages cross vsock through the agent
//! (`StreamTarget::Share`; two connections, one per direction, as for published ports).
//!
//! Chosen over virtio-fs because one mechanism then serves both VM monitors unchanged
//! (our VMM has no vhost-user front end, and QEMU would need a `virtiofsd` per share),
//! and the guest needs nothing but the kernel's FUSE: the agent only moves messages. The
//! cost is throughput (every request crosses vsock; no DAX), so the file system answers
//! with short cache lifetimes and the guest always sees the host's current files.
//!
//! Per share three threads run here: requests from the guest into a `SOCK_SEQPACKET`
//! pair (one FUSE message per packet, which is how the FUSE server reads a channel), the
//! server on the other end, and its replies back to the guest.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;

use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, SockFlag, SockType};
use vmrun_agent_protocol::StreamTarget;

use super::machine::Machine;
use super::ports::{next_token, open_target};
use crate::backend::{BackendError, ContainerSpec, MountSpec};

/// Largest FUSE message either way (a 256-page write and its headers).
const MAX_MESSAGE: usize = 256 * 4096 + 4096;

/// One directory to share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestShare {
    /// Its name in the guest (`vmrun_agent_protocol::share_path`).
    pub id: String,
    /// The host directory.
    pub host_path: PathBuf,
    /// `:ro`.
    pub read_only: bool,
}

/// Mount `m` of container `c` (its `index`-th) as a share: the share, and the mount with
/// its source in the guest.
pub fn share_mount(
    c: &ContainerSpec,
    index: usize,
    m: &MountSpec,
) -> Result<(GuestShare, MountSpec), BackendError> {
    if !m.source.is_dir() {
        return Err(BackendError::BadRequest(format!(
            "{}: only directories can be shared into a VM (bind its directory instead)",
            m.source.display()
        )));
    }
    let id = format!("{}-{index}", c.short_id());
    let mount = MountSpec {
        source: vmrun_agent_protocol::share_path(&id),
        destination: m.destination.clone(),
        read_only: m.read_only,
        fill_from_image: false,
    };
    let share = GuestShare {
        id,
        host_path: m.source.clone(),
        read_only: m.read_only,
    };
    Ok((share, mount))
}

/// The shares of a running container; dropping it ends them (the guest mounts go).
#[derive(Default)]
pub struct ContainerShares {
    /// Clones of each share's two guest connections, to shut them down.
    connections: Vec<UnixStream>,
}

impl Drop for ContainerShares {
    fn drop(&mut self) {
        for c in &self.connections {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Mounts `shares` in `machine`'s guest and serves them.
pub async fn connect(
    machine: &Arc<Machine>,
    shares: Vec<GuestShare>,
) -> Result<ContainerShares, BackendError> {
    let mut running = ContainerShares::default();
    for share in shares {
        let host_path = share.host_path.display().to_string();
        let failed = |e: std::io::Error| {
            BackendError::Failed(format!("sharing {host_path} into the VM: {e}"))
        };
        let token = next_token();
        let (to_guest, from_guest) = tokio::try_join!(
            open_target(
                machine,
                StreamTarget::Share {
                    id: share.id.clone(),
                    read_only: share.read_only,
                    return_token: token,
                }
            ),
            open_target(machine, StreamTarget::ForwardReturn { token }),
        )
        .map_err(failed)?;
        let to_guest = blocking(to_guest).map_err(failed)?;
        let from_guest = blocking(from_guest).map_err(failed)?;
        running
            .connections
            .push(to_guest.try_clone().map_err(failed)?);
        running
            .connections
            .push(from_guest.try_clone().map_err(failed)?);
        serve(share, to_guest, from_guest).map_err(failed)?;
    }
    Ok(running)
}

/// A std stream in blocking mode from an agent connection.
fn blocking(stream: tokio::net::UnixStream) -> std::io::Result<UnixStream> {
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Starts the three threads of `share`.
fn serve(share: GuestShare, to_guest: UnixStream, from_guest: UnixStream) -> std::io::Result<()> {
    let (ours, theirs) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    for end in [&ours, &theirs] {
        // A packet must fit the send buffer whole; as root the default cap can be passed.
        let _ = socket::setsockopt(end, sockopt::SndBufForce, &(4 * MAX_MESSAGE));
    }
    let ours_too = ours.try_clone()?;
    let name = share.id.clone();
    std::thread::Builder::new()
        .name(format!("share-in-{name}"))
        .spawn(move || requests_to_server(from_guest, ours))?;
    std::thread::Builder::new()
        .name(format!("share-out-{name}"))
        .spawn(move || replies_to_guest(ours_too, to_guest))?;
    std::thread::Builder::new()
        .name(format!("share-{name}"))
        .spawn(move || {
            let options = vmrun_fileshare::ShareOptions {
                root: share.host_path.clone(),
                read_only: share.read_only,
            };
            if let Err(e) = vmrun_fileshare::serve(theirs, options) {
                tracing::debug!(share = %share.id, "a share's server ended: {e}");
            }
        })?;
    Ok(())
}

/// The guest kernel's requests (each starts with its little-endian length), one packet
/// each to the server.
fn requests_to_server(mut from_guest: UnixStream, server: OwnedFd) {
    let mut msg = vec![0u8; MAX_MESSAGE];
    loop {
        if from_guest.read_exact(&mut msg[..4]).is_err() {
            break;
        }
        let len = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize;
        if !(16..=MAX_MESSAGE).contains(&len) || from_guest.read_exact(&mut msg[4..len]).is_err() {
            break;
        }
        if socket::send(server.as_raw_fd(), &msg[..len], MsgFlags::empty()).is_err() {
            break;
        }
    }
    // The server reads an end of file and stops; the reply thread then ends too.
    let _ = socket::shutdown(server.as_raw_fd(), socket::Shutdown::Both);
}

/// The server's replies and notifications, one packet each, to the guest.
fn replies_to_guest(server: OwnedFd, mut to_guest: UnixStream) {
    let mut msg = vec![0u8; MAX_MESSAGE];
    loop {
        match socket::recv(server.as_raw_fd(), &mut msg, MsgFlags::empty()) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to_guest.write_all(&msg[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to_guest.shutdown(std::net::Shutdown::Both);
}
