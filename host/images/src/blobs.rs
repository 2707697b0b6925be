//! Content-addressed blobs: `blobs/sha256/<hex>`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::archive::StagedFile;
use crate::digest::{is_sha256_hex, Digest};
use crate::error::{ImageError, IoContext};

/// The blob directory of a store.
pub(crate) struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    /// Uses `<root>/blobs/sha256`, staging writes in `tmp` (same filesystem).
    pub(crate) fn new(root: &Path, tmp: &Path) -> Result<Self, ImageError> {
        let dir = root.join("blobs").join(Digest::ALGORITHM);
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        Ok(BlobStore {
            dir,
            tmp: tmp.to_owned(),
        })
    }

    /// Where the blob `digest` lives.
    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// Reads a blob whole (configs and manifests).
    pub(crate) fn read(&self, digest: &Digest) -> Result<Vec<u8>, ImageError> {
        let path = self.path(digest);
        fs::read(&path).ctx(|| format!("reading blob {}", path.display()))
    }

    /// Stores bytes whose digest the caller computed.
    pub(crate) fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<(), ImageError> {
        let dest = self.path(digest);
        if dest.exists() {
            return Ok(());
        }
        let mut tmp = tempfile::NamedTempFile::new_in(&self.tmp)
            .ctx(|| "creating a blob temp file".to_owned())?;
        tmp.write_all(bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .ctx(|| format!("writing blob {digest}"))?;
        tmp.persist(&dest)
            .map_err(|e| ImageError::io(format!("renaming blob {digest} into place"), e.error))?;
        Ok(())
    }

    /// Moves a verified staged file into place (kept as is when the blob is already stored).
    pub(crate) fn put_staged(&self, file: &StagedFile) -> Result<(), ImageError> {
        let dest = self.path(&file.digest);
        if dest.exists() {
            return Ok(());
        }
        fs::rename(&file.path, &dest).ctx(|| format!("renaming blob {} into place", file.digest))
    }

    /// Removes a blob (missing is fine).
    pub(crate) fn remove(&self, digest: &Digest) -> Result<(), ImageError> {
        match fs::remove_file(self.path(digest)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ImageError::io(format!("removing blob {digest}"), e))
            }
            _ => Ok(()),
        }
    }

    /// Every stored blob.
    pub(crate) fn list(&self) -> Result<Vec<Digest>, ImageError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).ctx(|| format!("listing {}", self.dir.display()))? {
            let entry = entry.ctx(|| format!("listing {}", self.dir.display()))?;
            if let Some(name) = entry.file_name().to_str().filter(|n| is_sha256_hex(n)) {
                out.push(Digest::from_hex(name)?);
            }
        }
        Ok(out)
    }
}
