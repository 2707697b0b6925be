//! Network namespaces pinned by bind mounts, the way `ip netns add` does it.
//!
//! A namespace is created by `unshare(CLONE_NEWNET)` in a short-lived thread
//! and kept alive by bind-mounting that thread's `ns/net` onto a file under
//! the namespace directory. Work inside a namespace happens on a dedicated
//! thread that `setns`es into it, never on the caller's thread.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::NetworkError;
use vmrun_netlink::Netlink;

/// `ifindex` of the loopback device in every network namespace.
const LOOPBACK_INDEX: u32 = 1;

fn netns_error<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(io::Error) -> NetworkError + 'a {
    move |source| NetworkError::Netns {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn errno_to_io(errno: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(errno as i32)
}

/// Creates `dir` and makes it a shared mount point, so that unmounting a
/// namespace file there also unmounts it in mount namespaces copied from
/// ours (containers, other runtimes), as iproute2 does for `/run/netns`.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), NetworkError> {
    fs::create_dir_all(dir).map_err(netns_error(dir, "create directory"))?;
    let make_shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself first.
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| netns_error(dir, "bind-mount directory onto itself")(errno_to_io(e)))?;
            make_shared()
                .map_err(|e| netns_error(dir, "make directory a shared mount")(errno_to_io(e)))
        }
        Err(e) => Err(netns_error(dir, "make directory a shared mount")(
            errno_to_io(e),
        )),
    }
}

/// Unmounts the namespace directory made by [`prepare_dir`] (tests, uninstall).
pub(crate) fn release_dir(dir: &Path) {
    let _ = umount2(dir, MntFlags::MNT_DETACH);
}

/// Whether `path` is a mounted network namespace file.
pub fn is_netns(path: &Path) -> bool {
    match nix::sys::statfs::statfs(path) {
        Ok(stat) => stat.filesystem_type() == nix::sys::statfs::NSFS_MAGIC,
        Err(_) => false,
    }
}

/// A new network namespace that no file pins yet: held by an nsfs file
/// descriptor, with `lo` up and a netlink socket inside it.
pub(crate) struct UnpinnedNetns {
    handle: OwnedFd,
    netlink: Netlink,
}

impl UnpinnedNetns {
    /// Creates one: `unshare(CLONE_NEWNET)` on a short-lived thread, which
    /// opens its own `ns/net` and a netlink socket before it exits.
    pub fn new() -> io::Result<Self> {
        std::thread::Builder::new()
            .name("netns-create".into())
            .spawn(|| -> io::Result<UnpinnedNetns> {
                unshare(CloneFlags::CLONE_NEWNET).map_err(errno_to_io)?;
                let handle: OwnedFd = File::open("/proc/thread-self/ns/net")?.into();
                let mut netlink = Netlink::open()?;
                netlink.set_up(LOOPBACK_INDEX)?;
                Ok(UnpinnedNetns { handle, netlink })
            })?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    }

    /// Pins the namespace at `path` (a bind mount of its nsfs file, as
    /// `ip netns add` makes) and returns the netlink socket inside it.
    pub fn pin(self, path: &Path) -> Result<Netlink, NetworkError> {
        if path.exists() {
            remove(path)?;
        }
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(netns_error(path, "create namespace file"))?;
        let source = format!("/proc/self/fd/{}", self.handle.as_raw_fd());
        if let Err(e) = mount(
            Some(source.as_str()),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            let _ = fs::remove_file(path);
            return Err(netns_error(path, "bind-mount")(errno_to_io(e)));
        }
        Ok(self.netlink)
    }
}

/// Runs `work` on a fresh thread that has entered the namespace at `path`.
pub fn run_in<R, F>(path: &Path, work: F) -> Result<R, NetworkError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let namespace = File::open(path).map_err(netns_error(path, "open"))?;
    let owned_path: PathBuf = path.to_path_buf();
    std::thread::Builder::new()
        .name("netns-enter".into())
        .spawn(move || -> Result<R, NetworkError> {
            setns(namespace.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|e| netns_error(&owned_path, "setns")(errno_to_io(e)))?;
            Ok(work())
        })
        .map_err(netns_error(path, "spawn thread"))?
        .join()
        .unwrap_or_else(|_| {
            Err(netns_error(path, "thread")(io::Error::other(
                "namespace thread panicked",
            )))
        })
}

/// The address of a namespace's way out: the address (with its prefix) of the
/// interface its IPv4 default route leaves by, and that route's gateway. `None` when
/// it has no default route through a gateway, or that interface has no address. (A
/// pod's namespace as CNI made it: `eth0` with the pod IP, `default via` the bridge.)
pub fn default_route(path: &Path) -> Result<Option<(ipnet::Ipv4Net, Ipv4Addr)>, NetworkError> {
    run_in(
        path,
        || -> io::Result<Option<(ipnet::Ipv4Net, Ipv4Addr)>> {
            let mut netlink = Netlink::open()?;
            let Some((oif, gateway)) = netlink
                .routes()?
                .into_iter()
                .filter(|r| r.destination.prefix_len() == 0)
                .find_map(|r| Some((r.oif?, r.gateway?)))
            else {
                return Ok(None);
            };
            Ok(netlink
                .addresses()?
                .into_iter()
                .find(|a| a.index == oif)
                .map(|a| (a.network, gateway)))
        },
    )?
    .map_err(netns_error(path, "read the default route"))
}

/// Unmounts and deletes a namespace file. Idempotent.
pub(crate) fn remove(path: &Path) -> Result<(), NetworkError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(netns_error(path, "unmount")(errno_to_io(e))),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(netns_error(path, "remove file")(e)),
    }
}
