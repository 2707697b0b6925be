//! Unpacked layers: `layers/<chain-id hex>/diff` (the directory overlayfs
//! stacks) and `layers/<chain-id hex>/layer.json` (what it is).
//!
//! A layer is unpacked once into a staging directory, its uncompressed stream
//! hashed on the way and checked against the config's diff id, and only then
//! renamed into place; images sharing a layer share its directory.

use std::fs::{self, File};
use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tempfile::TempDir;

use crate::archive::StagedFile;
use crate::compression::decompress;
use crate::digest::{is_sha256_hex, Digest, HashingReader};
use crate::error::{ImageError, IoContext};
use crate::unpack::{unpack_layer, UnpackError, UnpackOptions};

const DIFF_DIR: &str = "diff";
const META_FILE: &str = "layer.json";

/// What `layer.json` records.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LayerMeta {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    /// Bytes of file content.
    pub size: u64,
    /// Blobs (compressed forms) known to unpack to this diff id.
    pub blobs: Vec<Digest>,
}

/// A layer ready to be committed.
pub(crate) enum PreparedLayer {
    /// Already in the store; verified to have the same diff id.
    Existing { size: u64 },
    /// Unpacked into a staging directory.
    New { staging: TempDir, size: u64 },
}

impl PreparedLayer {
    pub(crate) fn size(&self) -> u64 {
        match self {
            PreparedLayer::Existing { size } | PreparedLayer::New { size, .. } => *size,
        }
    }
}

/// The layer directory of a store.
pub(crate) struct LayerStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl LayerStore {
    /// Uses `<root>/layers`, staging in `tmp` (same filesystem).
    pub(crate) fn new(root: &Path, tmp: &Path) -> Result<Self, ImageError> {
        let dir = root.join("layers");
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        Ok(LayerStore {
            dir,
            tmp: tmp.to_owned(),
        })
    }

    /// The unpacked directory of the layer `chain_id`.
    pub(crate) fn diff_dir(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join(chain_id.hex()).join(DIFF_DIR)
    }

    fn meta(&self, chain_id: &Digest) -> Option<LayerMeta> {
        let path = self.dir.join(chain_id.hex()).join(META_FILE);
        let bytes = fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Makes the layer `chain_id` available: reuses the stored one (after
    /// checking the blob unpacks to the same diff id) or unpacks the blob
    /// into a staging directory, verifying its diff id.
    pub(crate) fn prepare(
        &self,
        image: &str,
        chain_id: &Digest,
        parent: Option<&Digest>,
        diff_id: &Digest,
        blob: &StagedFile,
    ) -> Result<PreparedLayer, ImageError> {
        let layer_err = |source: UnpackError| ImageError::Layer {
            image: image.to_owned(),
            layer: diff_id.to_string(),
            source,
        };
        let open = || -> Result<_, ImageError> {
            let file = File::open(&blob.path).ctx(|| format!("opening {}", blob.path.display()))?;
            let (_, reader) =
                decompress(BufReader::new(file)).map_err(|e| layer_err(UnpackError::Read(e)))?;
            Ok(HashingReader::new(reader))
        };
        if let Some(meta) = self.meta(chain_id) {
            if meta.diff_id == *diff_id && !meta.blobs.contains(&blob.digest) {
                let (actual, _) = open()?
                    .finish()
                    .map_err(|e| layer_err(UnpackError::Read(e)))?;
                check_diff_id(image, diff_id, &actual)?;
            }
            if meta.diff_id == *diff_id {
                tracing::debug!(%chain_id, "layer already unpacked; sharing it");
                return Ok(PreparedLayer::Existing { size: meta.size });
            }
        }
        let staging = self.staging_dir()?;
        let diff = staging.path().join(DIFF_DIR);
        fs::create_dir(&diff)
            .and_then(|()| fs::set_permissions(&diff, fs::Permissions::from_mode(0o755)))
            .ctx(|| format!("creating {}", diff.display()))?;
        let mut reader = open()?;
        let stats =
            unpack_layer(&mut reader, &diff, UnpackOptions::default()).map_err(layer_err)?;
        let (actual, _) = reader
            .finish()
            .map_err(|e| layer_err(UnpackError::Read(e)))?;
        check_diff_id(image, diff_id, &actual)?;
        let meta = LayerMeta {
            chain_id: chain_id.clone(),
            diff_id: diff_id.clone(),
            parent: parent.cloned(),
            size: stats.bytes,
            blobs: vec![blob.digest.clone()],
        };
        write_meta(staging.path(), &meta)?;
        Ok(PreparedLayer::New {
            staging,
            size: stats.bytes,
        })
    }

    /// Makes the layer `chain_id` from `dir`, a directory already in unpacked overlayfs
    /// form whose tar is `blob` (written from it by this process): moved into a staging
    /// directory rather than unpacked again. Falls back to unpacking `blob` when `dir`
    /// is on another file system.
    pub(crate) fn adopt(
        &self,
        image: &str,
        chain_id: &Digest,
        parent: Option<&Digest>,
        diff_id: &Digest,
        blob: &StagedFile,
        dir: &Path,
    ) -> Result<PreparedLayer, ImageError> {
        if self.meta(chain_id).is_some_and(|m| m.diff_id == *diff_id) {
            return self.prepare(image, chain_id, parent, diff_id, blob);
        }
        let staging = self.staging_dir()?;
        let diff = staging.path().join(DIFF_DIR);
        match fs::rename(dir, &diff) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc_exdev()) => {
                return self.prepare(image, chain_id, parent, diff_id, blob);
            }
            Err(e) => {
                return Err(ImageError::io(
                    format!("moving {} into the layer store", dir.display()),
                    e,
                ))
            }
        }
        fs::set_permissions(&diff, fs::Permissions::from_mode(0o755))
            .ctx(|| format!("setting the mode of {}", diff.display()))?;
        let size = content_bytes(&diff)?;
        let meta = LayerMeta {
            chain_id: chain_id.clone(),
            diff_id: diff_id.clone(),
            parent: parent.cloned(),
            size,
            blobs: vec![blob.digest.clone()],
        };
        write_meta(staging.path(), &meta)?;
        Ok(PreparedLayer::New { staging, size })
    }

    /// A fresh staging directory for a layer, in the store's temporary directory.
    fn staging_dir(&self) -> Result<tempfile::TempDir, ImageError> {
        tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(&self.tmp)
            .ctx(|| {
                format!(
                    "creating a layer staging directory in {}",
                    self.tmp.display()
                )
            })
    }

    /// Renames a staged layer into place.
    pub(crate) fn commit(
        &self,
        chain_id: &Digest,
        prepared: PreparedLayer,
    ) -> Result<(), ImageError> {
        let PreparedLayer::New { staging, .. } = prepared else {
            return Ok(());
        };
        let dest = self.dir.join(chain_id.hex());
        if dest.exists() {
            return Ok(());
        }
        let staged = staging.keep();
        fs::rename(&staged, &dest).ctx(|| format!("renaming layer {chain_id} into place"))
    }

    /// Removes a layer: renamed out of the way first, so no half-removed layer keeps its name.
    pub(crate) fn remove(&self, chain_id: &Digest) -> Result<(), ImageError> {
        let dest = self.dir.join(chain_id.hex());
        if !dest.exists() {
            return Ok(());
        }
        let trash = tempfile::Builder::new()
            .prefix("remove-")
            .tempdir_in(&self.tmp)
            .ctx(|| "creating a removal directory".to_owned())?;
        let moved = trash.path().join("layer");
        fs::rename(&dest, &moved).ctx(|| format!("moving layer {chain_id} out of the store"))?;
        trash.close().ctx(|| format!("removing layer {chain_id}"))
    }

    /// Every layer directory present.
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

fn check_diff_id(image: &str, expected: &Digest, actual: &Digest) -> Result<(), ImageError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            what: format!("image {image}: uncompressed layer (config rootfs.diff_ids)"),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

/// `EXDEV`: a rename across file systems.
fn libc_exdev() -> i32 {
    rustix::io::Errno::XDEV.raw_os_error()
}

/// Bytes of regular-file content under `dir` (what unpacking counts as a layer's size).
fn content_bytes(dir: &Path) -> Result<u64, ImageError> {
    let mut total = 0;
    for entry in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        let meta = fs::symlink_metadata(entry.path())
            .ctx(|| format!("inspecting {}", entry.path().display()))?;
        if meta.is_dir() {
            total += content_bytes(&entry.path())?;
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// Writes a layer's `layer.json` into its staging directory.
fn write_meta(staging: &Path, meta: &LayerMeta) -> Result<(), ImageError> {
    let meta_path = staging.join(META_FILE);
    let bytes = serde_json::to_vec_pretty(meta)
        .map_err(|e| ImageError::json("serializing layer.json", e))?;
    fs::write(&meta_path, bytes).ctx(|| format!("writing {}", meta_path.display()))
}
