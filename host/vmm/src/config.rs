//! What a VM is made of: [`VmConfig`] and its validation.
//!
//! Validation runs before anything is created, so a bad field fails fast with an error that
//! names the field, and nothing (sockets, threads, KVM objects) is left behind.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::memory::MAX_CMDLINE_LEN;

/// Most vCPUs a VM may have (bounded by the MP table and the APIC ID space we lay out).
pub const MAX_VCPUS: u8 = 32;
/// Smallest memory for a kernel boot.
pub const MIN_KERNEL_MEMORY_MIB: u32 = 16;
/// Smallest guest CID (0, 1 and 2 are reserved: hypervisor, local, host).
pub const MIN_GUEST_CID: u32 = 3;

/// Where the guest's 16550 serial port output goes.
#[derive(Clone, Default)]
pub enum SerialOutput {
    /// Discard it.
    #[default]
    Sink,
    /// The VMM process's stdout.
    Stdout,
    /// Append to a file (created if absent).
    File(PathBuf),
    /// An in-memory buffer (tests, embedding).
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl fmt::Debug for SerialOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerialOutput::Sink => write!(f, "Sink"),
            SerialOutput::Stdout => write!(f, "Stdout"),
            SerialOutput::File(p) => write!(f, "File({})", p.display()),
            SerialOutput::Buffer(_) => write!(f, "Buffer"),
        }
    }
}

/// CPU mode a raw guest image is entered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuMode {
    /// 16-bit real mode, CS = 0, IP = load address.
    Real,
    /// 64-bit long mode with the first 4 GiB identity mapped (2 MiB pages).
    Long,
}

/// What the vCPUs start executing.
#[derive(Clone, Debug)]
pub enum BootSource {
    /// A Linux kernel: ELF `vmlinux` (PVH entry preferred) or bzImage.
    Kernel {
        /// Kernel image path.
        kernel: PathBuf,
        /// Optional initrd / initramfs.
        initrd: Option<PathBuf>,
        /// Kernel command line; the VMM appends its `virtio_mmio.device=` entries.
        cmdline: String,
    },
    /// A raw program copied to `load_addr` and entered in `mode`. Without `irqchip`, `HLT`
    /// stops the vCPU. Every vCPU enters at `load_addr` with its index in `rdi`.
    Raw {
        /// Machine code.
        image: Vec<u8>,
        /// Guest physical load (and entry) address.
        load_addr: u64,
        /// Entry mode.
        mode: CpuMode,
        /// Create the in-kernel irqchip and PIT as for a kernel: KVM then handles `HLT` (the
        /// vCPU blocks until an interrupt) and only APs of index > 0 wait for INIT/SIPI, so
        /// a halt is noticed as for a kernel ([`crate::halt`]).
        irqchip: bool,
    },
}

/// The vsock device's host side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsockConfig {
    /// Guest context ID (>= 3).
    pub guest_cid: u32,
    /// Host Unix socket path ("hybrid vsock"): host -> guest connections arrive here.
    /// Guest -> host connections to port P go to `<uds_path>_<P>`.
    pub uds_path: PathBuf,
}

/// A raw disk image exposed as virtio-blk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDeviceConfig {
    /// Image path.
    pub path: PathBuf,
    /// Expose the disk read-only (`VIRTIO_BLK_F_RO`) and open the file read-only.
    pub read_only: bool,
}

/// Everything needed to start one VM.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// Number of vCPUs (1..=32).
    pub vcpus: u8,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// Kernel or raw program.
    pub boot: BootSource,
    /// Optional virtio-vsock device.
    pub vsock: Option<VsockConfig>,
    /// virtio-blk devices, in order (`/dev/vda`, `/dev/vdb`, ...).
    pub block_devices: Vec<BlockDeviceConfig>,
    /// Serial port output.
    pub serial: SerialOutput,
    /// Confine the vCPU and device threads with seccomp filters ([`crate::seccomp`]); off
    /// only for debugging.
    pub seccomp: bool,
}

/// A configuration error; the message names the bad field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid VM config: {field}: {reason}")]
pub struct ConfigError {
    /// The offending field, e.g. `memory_mib` or `block_devices[1].path`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Host memory in MiB (`MemTotal`), if it can be read.
fn host_memory_mib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Kinds of kernel image we can load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// ELF `vmlinux`.
    Elf,
    /// bzImage (`HdrS` setup header).
    BzImage,
}

/// Sniffs a kernel image's format from its headers.
pub fn detect_kernel_format(path: &Path) -> Result<KernelFormat, ConfigError> {
    let mut file = File::open(path).map_err(|e| {
        bad(
            "boot.kernel",
            format!("cannot open {}: {e}", path.display()),
        )
    })?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_ok() && magic == *b"\x7fELF" {
        return Ok(KernelFormat::Elf);
    }
    let mut hdrs = [0u8; 4];
    if file.seek(SeekFrom::Start(0x202)).is_ok()
        && file.read_exact(&mut hdrs).is_ok()
        && hdrs == *b"HdrS"
    {
        return Ok(KernelFormat::BzImage);
    }
    Err(bad(
        "boot.kernel",
        format!(
            "{} is not a kernel (neither an ELF vmlinux nor a bzImage)",
            path.display()
        ),
    ))
}

fn check_readable_file(field: &str, path: &Path) -> Result<(), ConfigError> {
    let meta =
        std::fs::metadata(path).map_err(|e| bad(field, format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(bad(
            field,
            format!("{} is not a regular file", path.display()),
        ));
    }
    File::open(path).map_err(|e| bad(field, format!("cannot open {}: {e}", path.display())))?;
    Ok(())
}

/// Checks a vsock Unix socket path is free. A stale socket file nobody listens on is fine
/// (it is removed when the device binds); a live one is "in use".
fn check_uds_path(path: &Path) -> Result<(), ConfigError> {
    const FIELD: &str = "vsock.uds_path";
    if path.as_os_str().is_empty() {
        return Err(bad(FIELD, "empty path"));
    }
    // sun_path holds 108 bytes including the NUL; `<path>_<port>` must fit too.
    if path.as_os_str().len() + 11 > 107 {
        return Err(bad(
            FIELD,
            "path too long for a Unix socket (with the _<port> suffix)",
        ));
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(bad(
            FIELD,
            format!("directory {} does not exist", parent.display()),
        ));
    }
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(bad(
                    FIELD,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(bad(
                    FIELD,
                    format!("{} is in use (something listens on it)", path.display()),
                ));
            }
            Ok(())
        }
    }
}

impl VmConfig {
    /// Checks every field; the first bad one is reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vcpus == 0 || self.vcpus > MAX_VCPUS {
            return Err(bad(
                "vcpus",
                format!("{} is out of range 1..={MAX_VCPUS}", self.vcpus),
            ));
        }
        let min_mib = match self.boot {
            BootSource::Kernel { .. } => MIN_KERNEL_MEMORY_MIB,
            BootSource::Raw { .. } => 1,
        };
        if self.memory_mib < min_mib {
            return Err(bad(
                "memory_mib",
                format!(
                    "{} MiB is below the minimum of {min_mib} MiB",
                    self.memory_mib
                ),
            ));
        }
        if let Some(host) = host_memory_mib() {
            if u64::from(self.memory_mib) > host {
                return Err(bad(
                    "memory_mib",
                    format!(
                        "{} MiB does not fit the host's {host} MiB of RAM",
                        self.memory_mib
                    ),
                ));
            }
        }
        match &self.boot {
            BootSource::Kernel {
                kernel,
                initrd,
                cmdline,
            } => {
                check_readable_file("boot.kernel", kernel)?;
                detect_kernel_format(kernel)?;
                if let Some(initrd) = initrd {
                    check_readable_file("boot.initrd", initrd)?;
                }
                let reserve = crate::kernel::cmdline_reserve(self);
                if cmdline.len() + reserve > MAX_CMDLINE_LEN {
                    return Err(bad(
                        "boot.cmdline",
                        format!(
                            "{} bytes is too long (at most {} with this VM's devices)",
                            cmdline.len(),
                            MAX_CMDLINE_LEN.saturating_sub(reserve)
                        ),
                    ));
                }
                if cmdline.contains('\0') {
                    return Err(bad("boot.cmdline", "contains a NUL byte"));
                }
            }
            BootSource::Raw {
                image, load_addr, ..
            } => {
                if image.is_empty() {
                    return Err(bad("boot.image", "empty image"));
                }
                let end = load_addr.checked_add(image.len() as u64);
                let mem_end = u64::from(self.memory_mib) << 20;
                if *load_addr < 0x1000 || end.is_none_or(|e| e > mem_end.min(0xA0000)) {
                    return Err(bad(
                        "boot.load_addr",
                        "image must lie in low memory between 0x1000 and 0xA0000",
                    ));
                }
            }
        }
        if let Some(vsock) = &self.vsock {
            if vsock.guest_cid < MIN_GUEST_CID {
                return Err(bad(
                    "vsock.guest_cid",
                    format!(
                        "{} is reserved (must be >= {MIN_GUEST_CID})",
                        vsock.guest_cid
                    ),
                ));
            }
            check_uds_path(&vsock.uds_path)?;
        }
        if self.block_devices.len() > crate::memory::MAX_MMIO_DEVICES - 1 {
            return Err(bad("block_devices", "too many block devices"));
        }
        for (i, blk) in self.block_devices.iter().enumerate() {
            let field = format!("block_devices[{i}].path");
            check_readable_file(&field, &blk.path)?;
            if !blk.read_only {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&blk.path)
                    .map_err(|e| {
                        bad(
                            &field,
                            format!("cannot open {} read-write: {e}", blk.path.display()),
                        )
                    })?;
            }
        }
        if let SerialOutput::File(p) = &self.serial {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| bad("serial", format!("cannot open {}: {e}", p.display())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> VmConfig {
        VmConfig {
            vcpus: 1,
            memory_mib: 2,
            boot: BootSource::Raw {
                image: vec![0xf4],
                load_addr: 0x1000,
                mode: CpuMode::Real,
                irqchip: false,
            },
            vsock: None,
            block_devices: vec![],
            serial: SerialOutput::Sink,
            seccomp: true,
        }
    }

    #[test]
    fn valid_raw_config_passes() {
        raw().validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let mut c = raw();
        c.vcpus = 0;
        assert_eq!(c.validate().unwrap_err().field, "vcpus");
        let mut c = raw();
        c.memory_mib = u32::MAX;
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "memory_mib");
        assert!(e.to_string().contains("does not fit the host"), "{e}");
        let mut c = raw();
        c.vsock = Some(VsockConfig {
            guest_cid: 2,
            uds_path: "/tmp/x.sock".into(),
        });
        assert_eq!(c.validate().unwrap_err().field, "vsock.guest_cid");
        let mut c = raw();
        c.block_devices.push(BlockDeviceConfig {
            path: "/nonexistent/disk.img".into(),
            read_only: true,
        });
        assert_eq!(c.validate().unwrap_err().field, "block_devices[0].path");
    }

    #[test]
    fn kernel_must_be_a_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let not_kernel = dir.path().join("notes.txt");
        std::fs::write(&not_kernel, b"hello, I am not a kernel").unwrap();
        let mut c = raw();
        c.memory_mib = 64;
        c.boot = BootSource::Kernel {
            kernel: not_kernel,
            initrd: None,
            cmdline: "console=ttyS0".into(),
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "boot.kernel");
        assert!(e.reason.contains("is not a kernel"), "{e}");

        c.boot = BootSource::Kernel {
            kernel: dir.path().join("missing"),
            initrd: None,
            cmdline: String::new(),
        };
        assert_eq!(c.validate().unwrap_err().field, "boot.kernel");

        let elf = dir.path().join("vmlinux");
        std::fs::write(&elf, b"\x7fELF\x02\x01\x01").unwrap();
        c.boot = BootSource::Kernel {
            kernel: elf,
            initrd: None,
            cmdline: "x".repeat(MAX_CMDLINE_LEN),
        };
        assert_eq!(c.validate().unwrap_err().field, "boot.cmdline");
    }

    #[test]
    fn live_vsock_socket_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut c = raw();
        c.vsock = Some(VsockConfig {
            guest_cid: 3,
            uds_path: path,
        });
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "vsock.uds_path");
        assert!(e.reason.contains("in use"), "{e}");
    }
}
