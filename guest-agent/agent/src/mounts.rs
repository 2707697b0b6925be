//! Disks the host attaches: read-only ext4 layer disks and the writable data disk; and the
//! mount table (`/proc/self/mountinfo`).

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use vmrun_agent_protocol::{layer_path, valid_id, AgentError, ErrorKind, DATA_DIR};

/// Mounts the ext4 layer disk `device` read-only at [`layer_path`]`(id)`; `Ok((path, true))`
/// when something is mounted there already.
pub fn mount_layer(device: &Path, id: &str) -> Result<(PathBuf, bool), AgentError> {
    if !valid_id(id) {
        return Err(AgentError::new(
            ErrorKind::BadRequest,
            format!("invalid layer id {id:?}"),
        ));
    }
    let target = layer_path(id);
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
    // `noload`: never replay a journal on a disk the host may share read-only.
    mount_ext4(device, &target, flags, Some("noload"))
}

/// Unmounts layer `id` from [`layer_path`]`(id)` when it is mounted; `Conflict` while a
/// container's overlay still uses it.
pub fn unmount_layer(id: &str) -> Result<(), AgentError> {
    if !valid_id(id) {
        return Err(AgentError::new(
            ErrorKind::BadRequest,
            format!("invalid layer id {id:?}"),
        ));
    }
    let target = layer_path(id);
    if !is_mount_point(&target.to_string_lossy()) {
        return Ok(());
    }
    match nix::mount::umount(&target) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&target);
            Ok(())
        }
        Err(nix::errno::Errno::EBUSY) => Err(AgentError::new(
            ErrorKind::Conflict,
            format!("layer {id} is in use"),
        )),
        Err(e) => Err(AgentError::new(
            ErrorKind::Internal,
            format!("unmounting {}: {e}", target.display()),
        )),
    }
}

/// Mounts the ext4 data disk at [`DATA_DIR`] and grows its file system to the device's
/// size when the host made the disk larger (a failure to grow is logged; the disk stays
/// usable at its old size).
pub fn mount_data_disk(device: &Path) -> Result<(PathBuf, bool), AgentError> {
    let mounted = mount_ext4(
        device,
        Path::new(DATA_DIR),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        None,
    )?;
    if !mounted.1 {
        match grow_to_device(device, Path::new(DATA_DIR)) {
            Ok(Some(blocks)) => tracing::info!("the data disk grew to {blocks} blocks"),
            Ok(None) => {}
            Err(e) => tracing::warn!("growing the data disk: {e}"),
        }
    }
    Ok(mounted)
}

nix::ioctl_write_ptr!(ext4_resize_fs, b'f', 16, u64);

/// Grows the ext4 file system of `device` mounted at `mount_point` (online,
/// `EXT4_IOC_RESIZE_FS`, as `resize2fs` does) to fill the device; `Some(new block count)`
/// when it grew.
fn grow_to_device(device: &Path, mount_point: &Path) -> std::io::Result<Option<u64>> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::fd::AsRawFd;
    let mut dev = std::fs::File::open(device)?;
    let device_bytes = dev.seek(SeekFrom::End(0))?;
    // The superblock: 1024 bytes at offset 1024.
    let mut sb = [0u8; 1024];
    dev.seek(SeekFrom::Start(1024))?;
    dev.read_exact(&mut sb)?;
    let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return Err(std::io::Error::other("not an ext4 file system"));
    }
    let block = 1024u64 << u32_at(24).min(6);
    let high = if u32_at(0x60) & 0x80 != 0 {
        u64::from(u32_at(0x150)) << 32
    } else {
        0
    };
    let current = high | u64::from(u32_at(4));
    let wanted = device_bytes / block;
    if wanted <= current {
        return Ok(None);
    }
    let dir = std::fs::File::open(mount_point)?;
    // SAFETY: the ioctl reads one u64 through the pointer, valid for the call, on a
    // descriptor this function owns.
    unsafe { ext4_resize_fs(dir.as_raw_fd(), &wanted) }.map_err(std::io::Error::from)?;
    Ok(Some(wanted))
}

fn mount_ext4(
    device: &Path,
    target: &Path,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(PathBuf, bool), AgentError> {
    let target_str = target.to_string_lossy();
    if is_mount_point(&target_str) {
        return Ok((target.to_owned(), true));
    }
    let is_file = match std::fs::metadata(device) {
        Ok(m) => m.is_file(),
        Err(e) => {
            return Err(AgentError::new(
                ErrorKind::NotFound,
                format!("device {}: {e}", device.display()),
            ))
        }
    };
    // An image file (a layer the host stored on the data disk) goes through a loop device.
    // Held open until the mount below holds the device (it auto-clears on last close).
    let loop_device;
    let device = if is_file {
        loop_device = crate::loop_device::attach_read_only(device).map_err(|e| {
            AgentError::new(
                ErrorKind::Internal,
                format!("attaching {} to a loop device: {e}", device.display()),
            )
        })?;
        loop_device.path.as_path()
    } else {
        device
    };
    std::fs::create_dir_all(target).map_err(|e| {
        AgentError::new(
            ErrorKind::Internal,
            format!("creating {}: {e}", target.display()),
        )
    })?;
    mount(Some(device), target, Some("ext4"), flags, data).map_err(|e| {
        AgentError::new(
            ErrorKind::Internal,
            format!(
                "mounting {} (ext4) at {}: {e}",
                device.display(),
                target.display()
            ),
        )
    })?;
    tracing::info!(device = %device.display(), target = %target.display(), "mounted");
    Ok((target.to_owned(), false))
}

/// Mount points in this mount namespace.
fn mount_points() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .collect()
}

/// Mount points at or below any of `prefixes`, deepest first.
pub fn mounts_under(prefixes: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| {
            prefixes
                .iter()
                .any(|p| m == p || m.starts_with(&format!("{p}/")))
        })
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    found
}

/// Whether `path` is a mount point.
pub fn is_mount_point(path: &str) -> bool {
    mount_points().iter().any(|m| m == path)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c));
        if octal {
            let v = (u32::from(b[i + 1] - b'0') << 6)
                | (u32::from(b[i + 2] - b'0') << 3)
                | u32::from(b[i + 3] - b'0');
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/x\134"), "/x\\");
        assert_eq!(unescape("/plain"), "/plain");
        assert!(is_mount_point("/proc"));
        assert!(mounts_under(&["/proc"]).iter().any(|m| m == "/proc"));
    }

    #[test]
    fn layer_ids_are_checked_and_missing_devices_named() {
        let e = mount_layer(Path::new("/dev/vdz"), "../x").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        let e = mount_layer(Path::new("/dev/no-such-disk"), "l1").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("/dev/no-such-disk"));
    }
}
