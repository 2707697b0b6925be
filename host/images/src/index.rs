//! `images.json`: which images the store holds and which names point at them.
//!
//! The index is the store's commit point: blobs and layer directories are
//! renamed into place first, then a new index is written to a temporary name,
//! synced and renamed over the old one. Anything on disk that the index does
//! not reference is garbage, removed when the store is opened.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{ImageError, IoContext};

/// The current format version of `images.json`.
pub(crate) const INDEX_VERSION: u32 = 1;

/// The whole index.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    pub version: u32,
    /// Image id (`sha256:<config digest>`) → what it is made of.
    pub images: BTreeMap<String, ImageRecord>,
    /// Familiar tagged reference (`busybox:latest`) → image id.
    pub tags: BTreeMap<String, String>,
    /// Holder (a container id) → the layers it runs on. Held layers outlive the images
    /// they came from, so removing an image never pulls the root file system out from
    /// under a container.
    #[serde(default)]
    pub holds: BTreeMap<String, BTreeSet<Digest>>,
}

/// One image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    /// The config blob's digest (the id without its prefix).
    pub config: Digest,
    /// The manifest blob's digest.
    pub manifest: Digest,
    /// Layers, bottom-most first.
    pub layers: Vec<LayerRecord>,
    /// When the image came into the store (seconds since the epoch).
    pub loaded_at: u64,
    /// `repo@sha256:…` references known for this image (set by registry pulls).
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// The image a build step made this one from (docker's `Parent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// One layer of an image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    /// Names the unpacked directory `layers/<hex>`.
    pub chain_id: Digest,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The (maybe compressed) blob as distributed.
    pub blob: Digest,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size.
    pub blob_size: u64,
    /// Bytes of file content once unpacked.
    pub size: u64,
}

impl Index {
    /// Reads the index at `path`; a missing file is an empty index.
    pub(crate) fn read(path: &Path) -> Result<Self, ImageError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Index {
                    version: INDEX_VERSION,
                    ..Index::default()
                })
            }
            Err(e) => return Err(ImageError::io(format!("reading {}", path.display()), e)),
        };
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::json(format!("parsing {}", path.display()), e))?;
        if index.version != INDEX_VERSION {
            return Err(ImageError::Corrupt {
                path: path.to_owned(),
                reason: format!("unknown index version {}", index.version),
            });
        }
        for (tag, id) in &index.tags {
            if !index.images.contains_key(id) {
                return Err(ImageError::Corrupt {
                    path: path.to_owned(),
                    reason: format!("tag {tag} points at unknown image {id}"),
                });
            }
        }
        Ok(index)
    }

    /// Writes the index atomically (temp file, fsync, rename, fsync of the directory).
    pub(crate) fn write(&self, path: &Path) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| ImageError::json("serializing the image index", e))?;
        let tmp = path.with_extension("json.tmp");
        let mut file = File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .ctx(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path).ctx(|| format!("renaming {} into place", tmp.display()))?;
        sync_parent(path)
    }

    /// The tags pointing at `id`, sorted.
    pub(crate) fn tags_of(&self, id: &str) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, v)| v.as_str() == id)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every layer chain id referenced by some image or held by some container.
    pub(crate) fn referenced_layers(&self) -> BTreeSet<Digest> {
        self.images
            .values()
            .flat_map(|r| r.layers.iter().map(|l| l.chain_id.clone()))
            .chain(self.holds.values().flatten().cloned())
            .collect()
    }

    /// Every blob referenced by some image (configs, manifests, layer blobs).
    pub(crate) fn referenced_blobs(&self) -> BTreeSet<Digest> {
        let mut out = BTreeSet::new();
        for record in self.images.values() {
            out.insert(record.config.clone());
            out.insert(record.manifest.clone());
            out.extend(record.layers.iter().map(|l| l.blob.clone()));
        }
        out
    }
}

/// Syncs the directory holding `path`, so a rename into it is durable.
pub(crate) fn sync_parent(path: &Path) -> Result<(), ImageError> {
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .ctx(|| format!("syncing {}", parent.display()))?;
    }
    Ok(())
}
