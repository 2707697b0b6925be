//! Disks of containers in microVMs: one read-only ext4 disk per image layer, built once
//! from the unpacked layer with `mkfs.ext4 -d` and cached by layer under
//! `<data-root>/vm/layers/<key>.ext4`, and the per-container sparse ext4 data disk that
//! holds the writable layer.
//!
//! A layer disk is built into a temporary file next to its final name and renamed into
//! place, so a crash or a concurrent build never leaves a half-built disk under the
//! final name; builds of one key in this process are serialized, so a layer shared by
//! two images (same chain id) is built once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// Errors making a disk.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was done.
        context: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `mkfs.ext4` failed.
    #[error("mkfs.ext4 for {what} failed: {stderr}")]
    Mkfs {
        /// The disk.
        what: String,
        /// Its error output.
        stderr: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DiskError {
    let context = context.into();
    move |source| DiskError::Io { context, source }
}

/// Size of the per-container data disk (sparse: only what is written takes space).
pub const CONTAINER_DATA_DISK_BYTES: u64 = 2 << 30;
/// Room left free on a layer disk beyond its content.
const LAYER_HEADROOM_BYTES: u64 = 8 << 20;
/// Bytes a file or directory costs on ext4 beyond its data (inode, directory entry).
const PER_ENTRY_BYTES: u64 = 4096;

/// The cache of layer disks.
pub struct LayerDisks {
    dir: PathBuf,
    building: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl LayerDisks {
    /// Removes the disks of layers for which `live(key)` is false; returns their keys.
    pub fn prune(&self, live: &dyn Fn(&str) -> bool) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".ext4") else {
                continue;
            };
            if live(key) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed.push(key.to_string()),
                Err(e) => tracing::warn!("removing {}: {e}", entry.path().display()),
            }
        }
        removed
    }

    /// Disks kept in `dir` (created on first use).
    pub fn new(dir: PathBuf) -> Self {
        LayerDisks {
            dir,
            building: Mutex::new(HashMap::new()),
        }
    }

    /// Where the disk of `layer` is (no I/O).
    pub fn path_of(&self, layer: &Path) -> PathBuf {
        self.dir.join(format!("{}.ext4", layer_key(layer)))
    }

    /// The disk of the unpacked layer `layer`, built now unless cached. Blocking.
    pub fn disk_for(&self, layer: &Path) -> Result<PathBuf, DiskError> {
        let key = layer_key(layer);
        let disk = self.path_of(layer);
        if disk.is_file() {
            return Ok(disk);
        }
        let lock = {
            let mut map = self.building.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        if disk.is_file() {
            return Ok(disk);
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(io(format!("creating {}", self.dir.display())))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{key}."))
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(io(format!(
                "creating a temporary disk in {}",
                self.dir.display()
            )))?;
        let (bytes, entries) = usage(layer)?;
        let size = (bytes + entries * PER_ENTRY_BYTES) * 5 / 4 + LAYER_HEADROOM_BYTES;
        let inodes = entries + entries / 4 + 256;
        mkfs(
            tmp.path(),
            size,
            &[
                "-O",
                "^has_journal",
                "-m",
                "0",
                "-N",
                &inodes.to_string(),
                "-d",
                &layer.to_string_lossy(),
            ],
            &format!("layer {}", layer.display()),
        )?;
        tmp.persist(&disk)
            .map_err(|e| io(format!("renaming into {}", disk.display()))(e.error))?;
        tracing::info!(layer = %layer.display(), disk = %disk.display(), size, "built a layer disk");
        Ok(disk)
    }
}

/// Whether layer `key` is still in the image store under `store_layers`
/// (`<data-root>/images/layers`): the store deletes a layer once no image or container
/// holds it. A key not named after a store layer (`path-…`) is taken as live.
pub fn in_store(store_layers: &Path, key: &str) -> bool {
    key.starts_with("path-") || store_layers.join(key).exists()
}

/// The cache key of a layer: the image store names unpacked layers
/// `layers/<chain-id hex>/diff`; anything else is keyed by a hash of its path.
pub fn layer_key(layer: &Path) -> String {
    let named = if layer.file_name().is_some_and(|n| n == "diff") {
        layer.parent().and_then(Path::file_name)
    } else {
        layer.file_name()
    };
    match named.and_then(|n| n.to_str()) {
        Some(n) if n.len() >= 12 && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_hexdigit()) => {
            n.to_string()
        }
        _ => {
            let digest = Sha256::digest(layer.as_os_str().as_encoded_bytes());
            format!("path-{}", hex::encode(&digest[..16]))
        }
    }
}

/// Data bytes (rounded up to 4 KiB blocks) and entries under `dir`, not following links.
fn usage(dir: &Path) -> Result<(u64, u64), DiskError> {
    let (mut bytes, mut entries) = (0u64, 1u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let read = std::fs::read_dir(&d).map_err(io(format!("reading {}", d.display())))?;
        for entry in read {
            let entry = entry.map_err(io(format!("reading {}", d.display())))?;
            let meta = entry
                .metadata()
                .map_err(io(format!("reading {}", entry.path().display())))?;
            entries += 1;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                bytes += meta.len().div_ceil(4096) * 4096;
            }
        }
    }
    Ok((bytes, entries))
}

/// Makes a data disk of `bytes` at `path` unless it exists (an existing shorter one is
/// lengthened, [`grow`]): a sparse ext4 image the guest mounts for writable layers (and, in
/// the shared VM, layer images), kept across runs. Blocking.
pub fn ensure_data_disk(path: &Path, bytes: u64) -> Result<(), DiskError> {
    if path.is_file() {
        return grow(path, bytes);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".data.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io(format!(
            "creating a temporary disk in {}",
            dir.display()
        )))?;
    mkfs(
        tmp.path(),
        bytes,
        &[
            "-L",
            "vmrun-data",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1",
        ],
        &format!("the data disk {}", path.display()),
    )?;
    tmp.persist(path)
        .map_err(|e| io(format!("renaming into {}", path.display()))(e.error))?;
    Ok(())
}

/// Makes the existing disk image `path` `bytes` long (sparse) when it is shorter; its
/// file system is grown to match by the agent when it mounts it. A smaller size leaves it
/// as it is (ext4 is not shrunk).
fn grow(path: &Path, bytes: u64) -> Result<(), DiskError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))?;
    let len = f
        .metadata()
        .map_err(io(format!("reading {}", path.display())))?
        .len();
    if len < bytes {
        f.set_len(bytes)
            .map_err(io(format!("growing {}", path.display())))?;
        tracing::info!(disk = %path.display(), from = len, to = bytes, "data disk grown");
    }
    Ok(())
}

/// `mkfs.ext4 -q -F <extra> <image> <size>K`.
fn mkfs(image: &Path, size: u64, extra: &[&str], what: &str) -> Result<(), DiskError> {
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-t", "ext4"])
        .args(extra)
        .arg(image)
        .arg(format!("{}K", size.div_ceil(1024)))
        .output()
        .map_err(io("running mkfs.ext4 (package e2fsprogs)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DiskError::Mkfs {
            what: what.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(root: &Path) -> PathBuf {
        let diff = root.join("layers").join("ab".repeat(32)).join("diff");
        std::fs::create_dir_all(diff.join("etc")).unwrap();
        std::fs::write(diff.join("etc/hello"), "hi\n").unwrap();
        std::os::unix::fs::symlink("hello", diff.join("etc/link")).unwrap();
        diff
    }

    fn have_mkfs() -> bool {
        Command::new("mkfs.ext4").arg("-V").output().is_ok()
    }

    /// The file names in `<dir>/cache` (none when it does not exist).
    fn cache_names(dir: &Path) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(dir.join("cache"))
            .map(|r| r.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn layer_keys_are_chain_ids_or_path_hashes() {
        let id = "ab".repeat(32);
        let p = PathBuf::from(format!("/var/lib/vmrun/images/layers/{id}/diff"));
        assert_eq!(layer_key(&p), id);
        let other = layer_key(Path::new("/some/dir/rootfs"));
        assert!(other.starts_with("path-"), "{other}");
        assert_ne!(other, layer_key(Path::new("/some/other/rootfs")));
    }

    #[test]
    fn a_layer_disk_is_built_once_and_reused() {
        if !have_mkfs() {
            return vmrun_test_skip::report("no mkfs.ext4 (e2fsprogs)");
        }
        let dir = tempfile::tempdir().unwrap();
        let l = layer(dir.path());
        let disks = LayerDisks::new(dir.path().join("cache"));
        let first = disks.disk_for(&l).unwrap();
        let mtime = std::fs::metadata(&first).unwrap().modified().unwrap();
        let again = LayerDisks::new(dir.path().join("cache"))
            .disk_for(&l)
            .unwrap();
        assert_eq!(first, again);
        assert_eq!(
            mtime,
            std::fs::metadata(&again).unwrap().modified().unwrap()
        );
        // Only the disk is left: no temporary files.
        let names = cache_names(dir.path());
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn concurrent_builds_of_one_layer_build_it_once() {
        if !have_mkfs() {
            return vmrun_test_skip::report("no mkfs.ext4 (e2fsprogs)");
        }
        let dir = tempfile::tempdir().unwrap();
        let l = layer(dir.path());
        let disks = Arc::new(LayerDisks::new(dir.path().join("cache")));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (disks, l) = (disks.clone(), l.clone());
                std::thread::spawn(move || disks.disk_for(&l).unwrap())
            })
            .collect();
        let paths: Vec<PathBuf> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(paths.windows(2).all(|w| w[0] == w[1]), "{paths:?}");
        let names = cache_names(dir.path());
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_failed_build_leaves_nothing_under_the_final_name() {
        if !have_mkfs() {
            return vmrun_test_skip::report("no mkfs.ext4 (e2fsprogs)");
        }
        let dir = tempfile::tempdir().unwrap();
        let disks = LayerDisks::new(dir.path().join("cache"));
        let missing = dir.path().join("layers").join("cd".repeat(32)).join("diff");
        assert!(disks.disk_for(&missing).is_err());
        let left = cache_names(dir.path());
        assert!(left.is_empty(), "{left:?}");
    }
}
