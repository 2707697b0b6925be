//! docker-archives, as `docker save` writes them: `manifest.json` listing, per
//! image, its `Config` file, `RepoTags` and `Layers` (tar files, maybe
//! compressed, maybe symlinks to a shared copy).
//!
//! The image id is the sha256 of the config file; layer blobs are hashed as
//! they are staged and their uncompressed digests are checked against the
//! config's `rootfs.diff_ids` when they are unpacked. An OCI manifest is
//! synthesized so every image in the store has one.

use std::fs::File;
use std::io::Read;

use serde::Deserialize;

use super::oci_layout::{Descriptor, Manifest, MEDIA_OCI_CONFIG, MEDIA_OCI_MANIFEST};
use super::{parse_name, verify, ImportedImage, ImportedLayer, StagedArchive};
use crate::compression::Compression;
use crate::digest::Digest;
use crate::error::{ImageError, IoContext};

/// One entry of `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Reads every image of a docker-archive.
pub(crate) fn parse(staged: &StagedArchive) -> Result<Vec<ImportedImage>, ImageError> {
    let entries: Vec<Entry> = staged.read_json("manifest.json")?;
    if entries.is_empty() {
        return Err(ImageError::InvalidArchive(
            "manifest.json lists no images".into(),
        ));
    }
    entries.iter().map(|e| read_entry(staged, e)).collect()
}

fn read_entry(staged: &StagedArchive, entry: &Entry) -> Result<ImportedImage, ImageError> {
    let config_file = staged.get(&entry.config)?;
    if let Some(named) = digest_named_by(&entry.config) {
        verify(&entry.config, config_file, &named, None)?;
    }
    let config = staged.read_bytes(config_file)?;
    let mut layers = Vec::with_capacity(entry.layers.len());
    for path in &entry.layers {
        let blob = staged.get(path)?.clone();
        if let Some(named) = digest_named_by(path) {
            verify(path, &blob, &named, None)?;
        }
        let compression = detect_file(&blob.path)?;
        layers.push(ImportedLayer {
            blob,
            media_type: compression.oci_layer_media_type().to_owned(),
        });
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_MANIFEST.to_owned()),
        config: Descriptor {
            media_type: MEDIA_OCI_CONFIG.to_owned(),
            digest: config_file.digest.clone(),
            size: config_file.size,
            annotations: Default::default(),
            platform: None,
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: l.media_type.clone(),
                digest: l.blob.digest.clone(),
                size: l.blob.size,
                annotations: Default::default(),
                platform: None,
            })
            .collect(),
    };
    let manifest = serde_json::to_vec(&manifest)
        .map_err(|e| ImageError::json("serializing a synthesized manifest", e))?;
    let names = entry
        .repo_tags
        .iter()
        .flatten()
        .filter_map(|t| parse_name(t))
        .collect();
    Ok(ImportedImage {
        names,
        manifest,
        config,
        config_digest: config_file.digest.clone(),
        layers,
        repo_digest: None,
        parent: None,
        unpacked_top: None,
    })
}

/// The digest a path names, for `<hex>.json` and `blobs/sha256/<hex>` (docker ≥ 25).
fn digest_named_by(path: &str) -> Option<Digest> {
    let file = path.rsplit('/').next()?;
    let hex = file.strip_suffix(".json").unwrap_or(file);
    let in_blobs = path.contains("blobs/sha256/");
    if in_blobs || file.ends_with(".json") {
        Digest::from_hex(hex).ok()
    } else {
        None
    }
}

fn detect_file(path: &std::path::Path) -> Result<Compression, ImageError> {
    let mut head = Vec::with_capacity(4);
    File::open(path)
        .and_then(|f| f.take(4).read_to_end(&mut head))
        .ctx(|| format!("reading {}", path.display()))?;
    Ok(Compression::detect(&head))
}
