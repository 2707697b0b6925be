//! What a VM is made of: [`VmSpec`], checked before anything is started.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::error::VmError;

/// Longest Unix socket path (`sun_path` is 108 bytes with its NUL); guest-initiated
/// connections use `<vsock_path>_<port>`, so leave room for that too.
const MAX_SOCKET_PATH: usize = 107 - 11;

/// One virtio-blk disk: a raw image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub path: PathBuf,
    pub read_only: bool,
}

/// A microVM to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub vcpus: u8,
    pub memory_mib: u32,
    /// ELF `vmlinux` with a PVH entry (both backends) or bzImage (our VMM only).
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// The whole kernel command line; backends only append their device announcements.
    /// Keep `reboot=k` (our VMM ends the VM on the i8042 reset) and `panic=-1`.
    pub cmdline: String,
    pub disks: Vec<DiskSpec>,
    /// The hybrid vsock Unix socket the backend creates (`CONNECT <port>\n`); guest
    /// connections to CID 2 port P go to `<vsock_path>_<P>`. Removed when the VM is dropped.
    pub vsock_path: PathBuf,
    /// The guest's vsock CID.
    pub guest_cid: u32,
    /// Where the guest's serial console goes; `None` discards it.
    pub serial_log: Option<PathBuf>,
}

impl VmSpec {
    /// A command line for the vmrun guest kernel (see `kernel-config/`).
    pub const DEFAULT_CMDLINE: &'static str = "console=ttyS0 reboot=k panic=-1 quiet";
    /// The guest CID both backends use unless told otherwise.
    pub const DEFAULT_GUEST_CID: u32 = 3;

    /// One vCPU, 256 MiB, [`Self::DEFAULT_CMDLINE`], no initrd, no disks, no serial log.
    pub fn new(kernel: impl Into<PathBuf>, vsock_path: impl Into<PathBuf>) -> Self {
        VmSpec {
            vcpus: 1,
            memory_mib: 256,
            kernel: kernel.into(),
            initrd: None,
            cmdline: Self::DEFAULT_CMDLINE.into(),
            disks: Vec::new(),
            vsock_path: vsock_path.into(),
            guest_cid: Self::DEFAULT_GUEST_CID,
            serial_log: None,
        }
    }

    /// Checks every field against the host (files exist, the socket path is free); the
    /// error names the field.
    pub fn validate(&self) -> Result<(), VmError> {
        let bad = |field, reason: String| Err(VmError::InvalidSpec { field, reason });
        if self.vcpus == 0 {
            return bad("vcpus", "must be at least 1".into());
        }
        if self.memory_mib < 32 {
            return bad(
                "memory_mib",
                format!("{} MiB is too small (at least 32)", self.memory_mib),
            );
        }
        if self.guest_cid < 3 {
            return bad(
                "guest_cid",
                format!("{} is reserved (guest CIDs start at 3)", self.guest_cid),
            );
        }
        require_file("kernel", &self.kernel)?;
        if let Some(initrd) = &self.initrd {
            require_file("initrd", initrd)?;
        }
        for disk in &self.disks {
            require_file("disks", &disk.path)?;
        }
        if self.cmdline.contains(['\n', '\0']) {
            return bad("cmdline", "contains a newline or NUL".into());
        }
        if let Some(log) = &self.serial_log {
            require_parent_dir("serial_log", log)?;
        }
        require_parent_dir("vsock_path", &self.vsock_path)?;
        let len = self.vsock_path.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return bad(
                "vsock_path",
                format!(
                    "{} is {len} bytes; Unix socket paths (plus \"_<port>\") must fit in {MAX_SOCKET_PATH}",
                    self.vsock_path.display()
                ),
            );
        }
        Ok(())
    }
}

fn require_file(field: &'static str, path: &Path) -> Result<(), VmError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(VmError::InvalidSpec {
            field,
            reason: format!("{} is not a regular file", path.display()),
        }),
        Err(e) => Err(VmError::InvalidSpec {
            field,
            reason: format!("{}: {e}", path.display()),
        }),
    }
}

fn require_parent_dir(field: &'static str, path: &Path) -> Result<(), VmError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if parent.is_dir() {
        Ok(())
    } else {
        Err(VmError::InvalidSpec {
            field,
            reason: format!("the directory of {} does not exist", path.display()),
        })
    }
}

/// Makes `path` free for a new listening socket: a stale socket (nobody accepting) is
/// removed; a live one or any other file is an error.
pub(crate) fn free_socket_path(field: &'static str, path: &Path) -> Result<(), VmError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(VmError::InvalidSpec {
            field,
            reason: format!("{} exists and is not a socket", path.display()),
        });
    }
    if UnixStream::connect(path).is_ok() {
        return Err(VmError::InvalidSpec {
            field,
            reason: format!("{} is in use (a running VM listens there)", path.display()),
        });
    }
    std::fs::remove_file(path)
        .map_err(|e| VmError::io(format!("removing the stale socket {}", path.display()), e))
}
