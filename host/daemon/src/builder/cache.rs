//! The classic builder's layer cache: a step hits when its parent image and its
//! instruction (for COPY/ADD with the checksums of the copied files) are those of a step
//! built before, and the image that step made is still in the store.
//!
//! Kept in `<data-root>/build-cache.json` (key → image id); a stale entry (its image
//! removed) is simply a miss.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Serialises reads and writes of the cache file between concurrent builds.
static FILE_LOCK: Mutex<()> = Mutex::new(());

/// The cache file of one daemon.
pub struct BuildCache {
    path: PathBuf,
}

impl BuildCache {
    /// The cache under `data_root`.
    pub fn open(data_root: &Path) -> BuildCache {
        BuildCache {
            path: data_root.join("build-cache.json"),
        }
    }

    /// The key of a step: its parent image (None: scratch) and what it does.
    pub fn key(parent: Option<&str>, step: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(parent.unwrap_or("scratch").as_bytes());
        hash.update([0]);
        hash.update(step.as_bytes());
        hex::encode(hash.finalize())
    }

    fn read(&self) -> BTreeMap<String, String> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The image a step with `key` made before, if recorded.
    pub fn get(&self, key: &str) -> Option<String> {
        let _lock = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        self.read().get(key).cloned()
    }

    /// Records the image a step made (best effort: a failed write only costs a miss).
    pub fn put(&self, key: &str, image_id: &str) {
        let _lock = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries = self.read();
        entries.insert(key.to_owned(), image_id.to_owned());
        let tmp = self.path.with_extension("json.tmp");
        let written = serde_json::to_vec(&entries)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::warn!(error = %e, "recording a build cache entry failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_finds() {
        let d = tempfile::tempdir().unwrap();
        let cache = BuildCache::open(d.path());
        let key = BuildCache::key(Some("sha256:aa"), "RUN true");
        assert_ne!(key, BuildCache::key(Some("sha256:bb"), "RUN true"));
        assert_ne!(key, BuildCache::key(None, "RUN true"));
        assert_eq!(cache.get(&key), None);
        cache.put(&key, "sha256:cc");
        assert_eq!(
            BuildCache::open(d.path()).get(&key).as_deref(),
            Some("sha256:cc")
        );
    }
}
