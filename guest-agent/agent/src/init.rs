//! PID 1 duties at boot: leave the initramfs for a tmpfs root (so containers can
//! `pivot_root`), mount the kernel file systems and cgroup2, bring up `lo`.

use std::path::Path;

use nix::mount::{mount, MsFlags};

/// Errors setting up the guest.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A mount failed.
    #[error("mounting {what} at {target}: {source}")]
    Mount {
        /// File system type.
        what: String,
        /// Mount point.
        target: String,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was done.
        context: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Sys {
        /// What was done.
        context: String,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InitError {
    let context = context.into();
    move |source| InitError::Io { context, source }
}

fn sys(context: impl Into<String>) -> impl FnOnce(nix::Error) -> InitError {
    let context = context.into();
    move |source| InitError::Sys { context, source }
}

fn mount_fs(
    fstype: &str,
    target: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), InitError> {
    std::fs::create_dir_all(target).map_err(io(format!("creating {target}")))?;
    mount(Some(fstype), target, Some(fstype), flags, data).map_err(|source| InitError::Mount {
        what: fstype.to_string(),
        target: target.to_string(),
        source,
    })
}

/// Files the agent needs in its root: `/init` (itself) and the shim.
const ROOT_FILES: &[&str] = &["init", "bin/vmrun-shim"];

/// Everything PID 1 sets up before it serves. Order matters: the root first (mounts made
/// before the switch would stay behind on the initramfs).
pub fn setup() -> Result<(), InitError> {
    if is_initramfs_root()? {
        switch_to_tmpfs_root()?;
    }
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", "/proc", nosuid_nodev_noexec, None)?;
    mount_fs("sysfs", "/sys", nosuid_nodev_noexec, None)?;
    mount_fs("devtmpfs", "/dev", MsFlags::MS_NOSUID, Some("mode=0755"))?;
    mount_fs(
        "devpts",
        "/dev/pts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0620,ptmxmode=0666,newinstance"),
    )?;
    mount_fs(
        "tmpfs",
        "/dev/shm",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    mount_fs(
        "tmpfs",
        "/run",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )?;
    mount_fs(
        "tmpfs",
        "/tmp",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    mount_fs("cgroup2", "/sys/fs/cgroup", nosuid_nodev_noexec, None)?;
    enable_controllers(Path::new("/sys/fs/cgroup"));
    if let Err(e) = crate::netns::bring_up_loopback() {
        tracing::warn!("bringing up lo: {e}");
    }
    Ok(())
}

/// Whether `/` is the kernel's initial ramfs/tmpfs ("rootfs"), which `pivot_root` refuses.
fn is_initramfs_root() -> Result<bool, InitError> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo");
    let mounts = match mounts {
        Ok(m) => m,
        // /proc is not mounted yet: mount it briefly to look.
        Err(_) => {
            mount_fs("proc", "/proc", MsFlags::empty(), None)?;
            let m = std::fs::read_to_string("/proc/self/mountinfo")
                .map_err(io("reading /proc/self/mountinfo"))?;
            nix::mount::umount("/proc").map_err(sys("unmounting /proc"))?;
            m
        }
    };
    Ok(mounts.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        // mount point is field 5; after " - " comes the fs type and the source.
        let root_mount = f.get(4) == Some(&"/");
        let src_rootfs = l
            .split(" - ")
            .nth(1)
            .is_some_and(|rest| rest.split(' ').nth(1) == Some("rootfs"));
        root_mount && src_rootfs
    }))
}

/// Copies the agent's files to a fresh tmpfs, removes them from the initramfs (freeing
/// their memory) and makes the tmpfs the root (`MS_MOVE` + `chroot`, like `switch_root`).
fn switch_to_tmpfs_root() -> Result<(), InitError> {
    let new = "/newroot";
    mount_fs("tmpfs", new, MsFlags::empty(), Some("mode=0755"))?;
    for file in ROOT_FILES {
        let from = Path::new("/").join(file);
        if !from.exists() {
            continue;
        }
        let to = Path::new(new).join(file);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::copy(&from, &to).map_err(io(format!("copying {}", from.display())))?;
        let _ = std::fs::remove_file(&from);
    }
    std::env::set_current_dir(new).map_err(io("entering the new root"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(sys("moving the new root onto /"))?;
    nix::unistd::chroot(".").map_err(sys("chroot into the new root"))?;
    std::env::set_current_dir("/").map_err(io("entering /"))?;
    Ok(())
}

/// Delegates every available controller to child cgroups (containers get them).
fn enable_controllers(root: &Path) {
    let Ok(available) = std::fs::read_to_string(root.join("cgroup.controllers")) else {
        return;
    };
    for c in available.split_whitespace() {
        if let Err(e) = std::fs::write(root.join("cgroup.subtree_control"), format!("+{c}")) {
            tracing::warn!("enabling the {c} controller: {e}");
        }
    }
}
