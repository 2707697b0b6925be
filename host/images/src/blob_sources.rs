//! Which registry repositories a stored blob is known to be in:
//! `<root>/blob-sources.json`, written by pulls and pushes. A push to another
//! repository on the same registry asks the registry to *mount* such a blob
//! (link it across repositories) instead of uploading it again.
//!
//! The file is a cache: a missing or unreadable one means "nothing known",
//! and entries for blobs the store no longer holds are dropped on each write.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{ImageError, IoContext};
use crate::store::ImageStore;

const SOURCES_FILE: &str = "blob-sources.json";
const SOURCES_VERSION: u32 = 1;
/// Repositories remembered per blob (the most recent ones).
const MAX_SOURCES_PER_BLOB: usize = 8;

/// Serializes read-modify-write cycles of the file within this process
/// (a store root is used by one process: see the store's `lock`).
static WRITER: Mutex<()> = Mutex::new(());

#[derive(Default, Serialize, Deserialize)]
struct SourcesFile {
    version: u32,
    /// Blob digest → repositories (`host:port/path`, `docker.io/library/busybox`), newest first.
    blobs: BTreeMap<Digest, Vec<String>>,
}

impl ImageStore {
    /// Repositories (`host:port/path`) known to hold `digest`, most recent first.
    pub(crate) fn blob_sources(&self, digest: &Digest) -> Vec<String> {
        self.read_sources().blobs.remove(digest).unwrap_or_default()
    }

    /// Records that `repository` (`host:port/path`) holds every blob of `digests`.
    /// Failures are logged, not returned: the record only saves uploads later.
    pub(crate) fn record_blob_sources(&self, repository: &str, digests: &[Digest]) {
        if let Err(e) = self.try_record_blob_sources(repository, digests) {
            tracing::warn!(error = %e, %repository, "could not record where blobs came from");
        }
    }

    fn try_record_blob_sources(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<(), ImageError> {
        let _guard = WRITER.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = self.read_sources();
        for digest in digests {
            let repos = file.blobs.entry(digest.clone()).or_default();
            repos.retain(|r| r != repository);
            repos.insert(0, repository.to_owned());
            repos.truncate(MAX_SOURCES_PER_BLOB);
        }
        file.blobs.retain(|d, _| self.blobs.path(d).exists());
        file.version = SOURCES_VERSION;
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| ImageError::json("serializing the blob sources", e))?;
        let path = self.root().join(SOURCES_FILE);
        let tmp = path.with_extension("json.tmp");
        let mut out = File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
        out.write_all(&bytes)
            .and_then(|()| out.sync_all())
            .ctx(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).ctx(|| format!("renaming {} into place", tmp.display()))
    }

    fn read_sources(&self) -> SourcesFile {
        let path = self.root().join(SOURCES_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return SourcesFile::default(),
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "ignoring unreadable blob sources");
                return SourcesFile::default();
            }
        };
        match serde_json::from_slice::<SourcesFile>(&bytes) {
            Ok(f) if f.version == SOURCES_VERSION => f,
            Ok(f) => {
                tracing::warn!(
                    version = f.version,
                    "ignoring blob sources of an unknown version"
                );
                SourcesFile::default()
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "ignoring corrupt blob sources");
                SourcesFile::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_newest_first_and_forgets_removed_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let kept = Digest::of_bytes(b"kept");
        let gone = Digest::of_bytes(b"gone");
        store.blobs.put_bytes(&kept, b"kept").unwrap();
        store.record_blob_sources("r:5000/a", &[kept.clone(), gone.clone()]);
        assert_eq!(store.blob_sources(&kept), vec!["r:5000/a"]);
        // `gone` is not stored: it is not remembered.
        assert!(store.blob_sources(&gone).is_empty());
        store.record_blob_sources("r:5000/b", std::slice::from_ref(&kept));
        store.record_blob_sources("r:5000/a", std::slice::from_ref(&kept));
        assert_eq!(store.blob_sources(&kept), vec!["r:5000/a", "r:5000/b"]);
        // A corrupt file reads as empty and is replaced by the next write.
        fs::write(dir.path().join(SOURCES_FILE), b"{nope").unwrap();
        assert!(store.blob_sources(&kept).is_empty());
        store.record_blob_sources("r:5000/c", std::slice::from_ref(&kept));
        assert_eq!(store.blob_sources(&kept), vec!["r:5000/c"]);
    }
}
