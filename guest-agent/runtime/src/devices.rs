//! Device nodes in the container's `/dev` and the standard links.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chown, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::error::ChildError;
use crate::mounts::{create_mount_point, do_mount, resolve_in_root};

/// One device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DevicePlan {
    /// Absolute path inside the container.
    pub(crate) path: PathBuf,
    pub(crate) kind: SFlag,
    pub(crate) major: u64,
    pub(crate) minor: u64,
    pub(crate) mode: u32,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
}

/// The devices every container gets: null, zero, full, random, urandom, tty.
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The default devices plus `linux.devices` (which win on the same path).
pub(crate) fn plan(spec_devices: &[LinuxDevice]) -> Vec<DevicePlan> {
    let mut devices: Vec<DevicePlan> = DEFAULT_DEVICES
        .iter()
        .filter(|(path, _, _)| !spec_devices.iter().any(|d| d.path() == Path::new(path)))
        .map(|&(path, major, minor)| DevicePlan {
            path: PathBuf::from(path),
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: None,
            gid: None,
        })
        .collect();
    devices.extend(spec_devices.iter().map(|d| DevicePlan {
        path: d.path().clone(),
        kind: match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        },
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid(),
        gid: d.gid(),
    }));
    devices
}

/// In the child, before pivot_root: creates the nodes under `rootfs`;
/// where `mknod` is not allowed, bind-mounts the host's node instead.
pub(crate) fn create_devices(rootfs: &Path, devices: &[DevicePlan]) -> Result<(), ChildError> {
    // The modes must not be narrowed by the caller's umask.
    let old_umask = nix::sys::stat::umask(Mode::empty());
    let result = devices.iter().try_for_each(|d| create_device(rootfs, d));
    nix::sys::stat::umask(old_umask);
    result
}

fn create_device(rootfs: &Path, device: &DevicePlan) -> Result<(), ChildError> {
    let target = resolve_in_root(rootfs, &device.path);
    if let Some(parent) = target.parent() {
        create_mount_point(parent, false)?;
    }
    let mode = Mode::from_bits_truncate(device.mode);
    match mknod(
        &target,
        device.kind,
        mode,
        makedev(device.major, device.minor),
    ) {
        Ok(()) => {}
        Err(Errno::EEXIST) => return Ok(()),
        Err(Errno::EPERM) => {
            create_mount_point(&target, true)?;
            return do_mount(Some(&device.path), &target, None, MsFlags::MS_BIND, None);
        }
        Err(e) => {
            return Err(ChildError::Setup(format!(
                "mknod {}: {}",
                target.display(),
                e.desc()
            )))
        }
    }
    if device.uid.is_some() || device.gid.is_some() {
        chown(
            &target,
            device.uid.map(Uid::from_raw),
            device.gid.map(Gid::from_raw),
        )
        .map_err(|e| ChildError::Setup(format!("chown {}: {}", target.display(), e.desc())))?;
    }
    Ok(())
}

/// In the child, before pivot_root: `/dev/fd`, `/dev/std*`, `/dev/ptmx`.
pub(crate) fn create_links(rootfs: &Path) -> Result<(), ChildError> {
    let dev = resolve_in_root(rootfs, Path::new("/dev"));
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let path = dev.join(link);
        if link == "ptmx" {
            // An image's own /dev/ptmx node would bypass the container's devpts.
            let _ = std::fs::remove_file(&path);
        }
        match std::os::unix::fs::symlink(target, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(ChildError::Setup(format!(
                    "symlink {}: {e}",
                    path.display()
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_devices_override_defaults() {
        let spec: LinuxDevice = serde_json::from_str(
            r#"{"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":420}"#,
        )
        .unwrap();
        let fuse: LinuxDevice =
            serde_json::from_str(r#"{"path":"/dev/fuse","type":"c","major":10,"minor":229}"#)
                .unwrap();
        let devices = plan(&[spec, fuse]);
        assert_eq!(devices.len(), 7);
        let null: Vec<_> = devices
            .iter()
            .filter(|d| d.path == Path::new("/dev/null"))
            .collect();
        assert_eq!(null.len(), 1);
        assert_eq!(null[0].mode, 0o644);
        assert!(devices
            .iter()
            .any(|d| d.path == Path::new("/dev/fuse") && d.minor == 229));
    }
}
