//! OCI image layouts: `oci-layout`, `index.json`, `blobs/sha256/…`.
//!
//! Names come from the `io.containerd.image.name` annotation, else from
//! `org.opencontainers.image.ref.name` when it is a full reference
//! (`busybox:latest`); a bare tag (`latest`) names no repository, so such an
//! image is loaded untagged. Nested indexes (multi-platform images) are
//! resolved to the host platform.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{parse_name, ImportedImage, ImportedLayer, StagedArchive};
use crate::digest::Digest;
use crate::error::ImageError;

/// Annotation with the full image name (containerd, docker ≥ 25).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI reference-name annotation.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

pub(crate) const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MAX_INDEX_DEPTH: usize = 4;

/// A content descriptor (the fields this store uses).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// A descriptor's platform.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image index (or docker manifest list).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The host platform as OCI names it.
pub(crate) fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

fn matches_host(platform: Option<&Platform>) -> bool {
    let (os, arch) = host_platform();
    platform.is_none_or(|p| p.os == os && p.architecture == arch)
}

/// Reads every image of an OCI layout.
pub(crate) fn parse(staged: &StagedArchive) -> Result<Vec<ImportedImage>, ImageError> {
    if staged.has("oci-layout") {
        let layout: serde_json::Value = staged.read_json("oci-layout")?;
        let version = layout.get("imageLayoutVersion").and_then(|v| v.as_str());
        if version != Some("1.0.0") {
            return Err(ImageError::Unsupported(format!(
                "OCI layout version {version:?}"
            )));
        }
    }
    let index: Index = staged.read_json("index.json")?;
    let mut images = Vec::new();
    for descriptor in &index.manifests {
        let names = names_of(descriptor);
        if let Some(image) = resolve_descriptor(staged, descriptor, names, 0)? {
            images.push(image);
        }
    }
    if images.is_empty() {
        let (os, arch) = host_platform();
        return Err(ImageError::InvalidArchive(format!(
            "the OCI layout has no image for {os}/{arch}"
        )));
    }
    Ok(images)
}

fn names_of(descriptor: &Descriptor) -> Vec<crate::reference::Reference> {
    let annotations = &descriptor.annotations;
    if let Some(name) = annotations.get(ANNOTATION_CONTAINERD_NAME) {
        return parse_name(name).into_iter().collect();
    }
    match annotations.get(ANNOTATION_REF_NAME) {
        Some(name) if name.contains([':', '/']) => parse_name(name).into_iter().collect(),
        Some(tag) => {
            tracing::warn!(%tag, "OCI ref name is a bare tag without a repository; loading the image untagged");
            Vec::new()
        }
        None => Vec::new(),
    }
}

fn resolve_descriptor(
    staged: &StagedArchive,
    descriptor: &Descriptor,
    names: Vec<crate::reference::Reference>,
    depth: usize,
) -> Result<Option<ImportedImage>, ImageError> {
    if !matches_host(descriptor.platform.as_ref()) {
        return Ok(None);
    }
    match descriptor.media_type.as_str() {
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => {
            if depth >= MAX_INDEX_DEPTH {
                return Err(ImageError::InvalidArchive(
                    "image indexes nested too deep".into(),
                ));
            }
            let blob = staged.blob(&descriptor.digest, Some(descriptor.size))?;
            let bytes = staged.read_bytes(blob)?;
            let nested: Index = serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::json(format!("parsing index {}", descriptor.digest), e))?;
            for child in &nested.manifests {
                if let Some(image) = resolve_descriptor(staged, child, names.clone(), depth + 1)? {
                    return Ok(Some(image));
                }
            }
            Ok(None)
        }
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => {
            read_manifest(staged, descriptor, names).map(Some)
        }
        other => {
            tracing::debug!(media_type = %other, digest = %descriptor.digest, "skipping a non-image descriptor");
            Ok(None)
        }
    }
}

fn read_manifest(
    staged: &StagedArchive,
    descriptor: &Descriptor,
    names: Vec<crate::reference::Reference>,
) -> Result<ImportedImage, ImageError> {
    let blob = staged.blob(&descriptor.digest, Some(descriptor.size))?;
    let manifest_bytes = staged.read_bytes(blob)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| ImageError::json(format!("parsing manifest {}", descriptor.digest), e))?;
    if manifest.schema_version != 2 {
        return Err(ImageError::Unsupported(format!(
            "manifest schema version {}",
            manifest.schema_version
        )));
    }
    let config_blob = staged.blob(&manifest.config.digest, Some(manifest.config.size))?;
    let config = staged.read_bytes(config_blob)?;
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for layer in &manifest.layers {
        check_layer_media_type(&layer.media_type)?;
        let blob = staged.blob(&layer.digest, Some(layer.size))?.clone();
        layers.push(ImportedLayer {
            blob,
            media_type: layer.media_type.clone(),
        });
    }
    Ok(ImportedImage {
        names,
        manifest: manifest_bytes,
        config,
        config_digest: manifest.config.digest.clone(),
        layers,
        repo_digest: None,
        parent: None,
        unpacked_top: None,
    })
}

/// Accepts the tar layer media types (plain, gzip, zstd; OCI, docker, non-distributable).
pub(crate) fn check_layer_media_type(media_type: &str) -> Result<(), ImageError> {
    let known = media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
        || media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    if known {
        Ok(())
    } else {
        Err(ImageError::Unsupported(format!(
            "layer media type {media_type:?}"
        )))
    }
}
