//! A task's root file system on the host: containerd's mounts (its snapshotter's overlay)
//! mounted on `<bundle>/rootfs` at create and unmounted at delete. The directory is then
//! shared into the guest ([`crate::sandbox`]).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use containerd_shim::protos::types::mount::Mount;

/// Mounts `mounts` on `<bundle>/rootfs` (none: the bundle brings its own `rootfs`).
pub fn mount(bundle: &Path, mounts: &[Mount]) -> anyhow::Result<PathBuf> {
    let target = bundle.join("rootfs");
    std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    for m in mounts {
        let fs_type = Some(m.type_.as_str()).filter(|s| !s.is_empty());
        let source = Some(m.source.as_str()).filter(|s| !s.is_empty());
        containerd_shim::mount::mount_rootfs(fs_type, source, &m.options, &target).with_context(
            || {
                format!(
                    "mounting {} ({}) on {}",
                    m.source,
                    m.type_,
                    target.display()
                )
            },
        )?;
    }
    Ok(target)
}

/// Unmounts everything on `<bundle>/rootfs` (nothing mounted is fine), and the binds'
/// files the shim mounted in the bundle ([`crate::mounts::unmount`]).
pub fn unmount(bundle: &Path) -> anyhow::Result<()> {
    let target = bundle.join("rootfs");
    let binds = crate::mounts::unmount(bundle);
    loop {
        match nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return binds,
            Err(e) => return Err(e).with_context(|| format!("unmounting {}", target.display())),
        }
    }
}
