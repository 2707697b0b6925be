//! Read-only loop devices: the shared VM keeps image layers as ext4 files on its data disk
//! and mounts each through a loop device.
//!
//! Written here rather than taken from a crate: it is two ioctls (`LOOP_CTL_GET_FREE`,
//! `LOOP_CONFIGURE`), and the maintained `loopdev` forks pull in bindgen at build time.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// `LOOP_CTL_GET_FREE` (linux/loop.h).
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
/// `LOOP_CONFIGURE` (linux/loop.h, Linux 5.8+).
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
/// `LO_FLAGS_READ_ONLY`.
const LO_FLAGS_READ_ONLY: u32 = 1;
/// `LO_FLAGS_AUTOCLEAR`: the device lets go of its file when the last user (the mount)
/// closes it.
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device, held open: with auto-clear the kernel detaches the file when
/// the last user closes the device, so keep this until the device is mounted (the mount
/// is then the user that keeps it).
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub path: PathBuf,
    _open: File,
}

/// Attaches `file` read-only (auto-clearing) to a free loop device.
pub fn attach_read_only(file: &Path) -> std::io::Result<LoopDevice> {
    let backing = File::open(file)?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    // Another attach can take the number between GET_FREE and CONFIGURE (EBUSY): retry.
    for _ in 0..8 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let device = OpenOptions::new().read(true).open(&path)?;
        // SAFETY: an all-zero loop_config is valid (no encryption, no offset, no limit).
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = u32::try_from(backing.as_raw_fd()).unwrap_or(u32::MAX);
        config.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
        let name = file.as_os_str().as_encoded_bytes();
        let len = name.len().min(config.info.lo_file_name.len() - 1);
        config.info.lo_file_name[..len].copy_from_slice(&name[..len]);
        // SAFETY: `config` is a valid loop_config that outlives the call; the kernel only
        // reads it. `device` and `backing` are open descriptors.
        let r = unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE, &config) };
        if r == 0 {
            return Ok(LoopDevice {
                path,
                _open: device,
            });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(e);
        }
    }
    Err(std::io::Error::other("no free loop device after 8 tries"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn an_attached_file_reads_back_through_the_device() {
        if !Path::new("/dev/loop-control").exists() || !nix::unistd::geteuid().is_root() {
            return vmrun_test_skip::report("needs root and /dev/loop-control");
        }
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        file.flush().unwrap();
        let device = attach_read_only(file.path()).unwrap();
        let mut back = Vec::new();
        File::open(&device.path)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        let path = device.path.clone();
        drop(device);
        assert_eq!(back.len(), data.len());
        assert!(back == data, "the device reads the file's bytes");
        // Auto-clear: with its last user gone the device lets go of the file.
        let size = std::fs::read_to_string(format!(
            "/sys/block/{}/size",
            path.file_name().unwrap().to_string_lossy()
        ))
        .unwrap_or_default();
        assert_eq!(size.trim(), "0", "{} still attached", path.display());
    }
}
