//! What a container VM boots: the guest kernel and the agent initramfs, as configured
//! (`--vm-kernel`, `--vm-initrd`) or found in the cache the build scripts fill
//! (`kernel-config/build.sh`: `<cache>/kernel/<hash>/vmlinux`;
//! `installer/agent-initramfs.sh`: `<cache>/initramfs/<hash>/initramfs.cpio`; the newest
//! of each).

use std::path::{Path, PathBuf};

use crate::config::DaemonConfig;

/// The guest kernel and initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestAssets {
    /// ELF `vmlinux`.
    pub kernel: PathBuf,
    /// The agent initramfs.
    pub initrd: PathBuf,
}

impl GuestAssets {
    /// The configured files, else the newest in the cache; `Err` says what is missing
    /// and how to get it.
    pub fn find(config: &DaemonConfig) -> Result<Self, String> {
        Self::locate(config.vm_kernel.as_deref(), config.vm_initrd.as_deref())
    }

    /// [`GuestAssets::find`] from the two paths alone (`None`: the newest cached), for
    /// programs other than the daemon (the containerd shim).
    pub fn locate(kernel: Option<&Path>, initrd: Option<&Path>) -> Result<Self, String> {
        let cache = vmrun_agent_client::initramfs::default_cache_root().ok();
        let kernel = pick(
            "the guest kernel",
            kernel,
            cache.as_deref(),
            "kernel",
            "vmlinux",
            "run kernel-config/build.sh or pass --vm-kernel",
        )?;
        let initrd = pick(
            "the agent initramfs",
            initrd,
            cache.as_deref(),
            "initramfs",
            "initramfs.cpio",
            "run installer/agent-initramfs.sh or pass --vm-initrd",
        )?;
        Ok(GuestAssets { kernel, initrd })
    }
}

fn pick(
    what: &str,
    configured: Option<&Path>,
    cache: Option<&Path>,
    sub: &str,
    file: &str,
    hint: &str,
) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(format!("{what} {} is not a file", path.display()))
        };
    }
    let dir = cache
        .map(|c| c.join(sub))
        .ok_or_else(|| format!("no {what}: no cache directory (HOME unset); {hint}"))?;
    newest(&dir, file).ok_or_else(|| format!("no {what} in {}: {hint}", dir.display()))
}

/// The newest `<dir>/*/<file>`.
fn newest(dir: &Path, file: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join(file))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).ok()?.modified().ok()?;
            Some((modified, p))
        })
        .max()
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_cached_file_wins_and_a_missing_one_says_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("kernel/aaa");
        let new = dir.path().join("kernel/bbb");
        for d in [&old, &new] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(old.join("vmlinux"), "old").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(new.join("vmlinux"), "new").unwrap();
        let got = pick("k", None, Some(dir.path()), "kernel", "vmlinux", "hint").unwrap();
        assert_eq!(got, new.join("vmlinux"));
        let e = pick("i", None, Some(dir.path()), "initramfs", "x", "run it").unwrap_err();
        assert!(e.contains("run it"), "{e}");
        let e = pick("k", Some(Path::new("/nope")), None, "", "", "").unwrap_err();
        assert!(e.contains("/nope"), "{e}");
    }
}
