//! Mounting a share on this host through the real kernel FUSE, for the integration tests:
//! `/dev/fuse` is opened, mounted with `fd=N`, and `serve` answers it on a thread. Either
//! directly, or through a `SOCK_SEQPACKET` relay like the daemon's (one message per recv).

#![allow(dead_code)] // Each test binary uses a part.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::socket::{recv, send, shutdown, socketpair, AddressFamily, MsgFlags, Shutdown};
use nix::sys::socket::{SockFlag, SockType};
use tempfile::TempDir;
use vmrun_fileshare::{serve, ShareError, ShareOptions};

/// How the FUSE messages reach `serve`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Channel {
    /// `serve` reads `/dev/fuse` itself.
    DevFuse,
    /// Through a seqpacket socket pair and a relay, as in the daemon.
    SeqPacket,
}

/// A share mounted at `mountpoint`; unmounted (and `serve` checked to end with `Ok`) by
/// [`Mounted::unmount`].
pub struct Mounted {
    pub share: TempDir,
    pub mountpoint: TempDir,
    served: Option<mpsc::Receiver<Result<(), ShareError>>>,
}

/// Why the mount tests cannot run here, if they cannot.
pub fn missing_requirement() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root to mount FUSE".into());
    }
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        return Some(format!("/dev/fuse cannot be opened: {e}"));
    }
    None
}

/// A share root (owned by 1000:1000 when `owner_1000`), with `prepare` run on it first.
pub fn share_dir(owner_1000: bool, prepare: impl FnOnce(&Path)) -> TempDir {
    let share = tempfile::tempdir().expect("share dir");
    prepare(share.path());
    if owner_1000 {
        nix::unistd::chown(
            share.path(),
            Some(nix::unistd::Uid::from_raw(1000)),
            Some(nix::unistd::Gid::from_raw(1000)),
        )
        .expect("chown share root");
    }
    share
}

/// Mounts `share` and serves it.
pub fn mount_share(share: TempDir, read_only: bool, channel: Channel) -> Mounted {
    let mountpoint = tempfile::tempdir().expect("mountpoint");
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/fuse")
        .expect("open /dev/fuse");
    let options = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions",
        dev.as_raw_fd()
    );
    mount(
        Some("vmrun-share"),
        mountpoint.path(),
        Some("fuse"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .expect("mount fuse");
    let served_fd: OwnedFd = match channel {
        Channel::DevFuse => OwnedFd::from(dev),
        Channel::SeqPacket => relay(dev),
    };
    let share_options = ShareOptions {
        root: share.path().to_path_buf(),
        read_only,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(serve(served_fd, share_options));
    });
    Mounted {
        share,
        mountpoint,
        served: Some(rx),
    }
}

/// Relays between `/dev/fuse` and a seqpacket pair, one message at a time in each direction,
/// and returns the end `serve` gets. When the mount goes (`ENODEV`), the relay shuts its end.
fn relay(dev: File) -> OwnedFd {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let mut dev_reader = dev.try_clone().expect("dup /dev/fuse");
    let mut dev_writer = dev;
    let to_server = ours.try_clone().expect("dup socket");
    let from_server = ours;
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match dev_reader.read(&mut buf) {
                Ok(n) => {
                    if send(to_server.as_raw_fd(), &buf[..n], MsgFlags::empty()).is_err() {
                        break;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(_) => break,
            }
        }
        let _ = shutdown(to_server.as_raw_fd(), Shutdown::Both);
    });
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match recv(from_server.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) | Err(_) => break,
                // A reply to an interrupted request answers ENOENT: not the relay's business.
                Ok(n) => match dev_writer.write(&buf[..n]) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(_) => break,
                },
            }
        }
    });
    theirs
}

impl Mounted {
    /// A path in the mount.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.mountpoint.path().join(rel)
    }

    /// The same path on the host, in the share.
    pub fn host(&self, rel: &str) -> PathBuf {
        self.share.path().join(rel)
    }

    /// Unmounts (lazily) and checks that `serve` then returned `Ok`.
    pub fn unmount(mut self) {
        self.detach();
        let served = self.served.take().expect("not yet unmounted");
        match served.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("serve ended with an error: {e}"),
            Err(e) => panic!("serve did not end after the unmount: {e}"),
        }
    }

    fn detach(&self) {
        let _ = umount2(self.mountpoint.path(), MntFlags::MNT_DETACH);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // A failing test must not leave a mount behind.
        if self.served.is_some() {
            self.detach();
        }
    }
}

/// The raw OS error of an I/O result that must have failed.
pub fn errno_of<T: std::fmt::Debug>(result: std::io::Result<T>) -> i32 {
    match result {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}
