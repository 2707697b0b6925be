//! Reading an image archive (the outer tar given to `load`).
//!
//! The outer tar is staged first: each regular file is written under a
//! numbered name in a staging directory inside the store (so blobs can later
//! be renamed into place) and hashed as it is written; symlinks and hard
//! links are kept as a map and resolved lexically inside the archive. No path
//! from the archive is ever used on the filesystem. The staged archive is then
//! read as an OCI image layout ([`oci_layout`]) or a docker-archive
//! ([`docker_archive`]), producing [`ImportedImage`]s whose blobs are all
//! verified against their digests.

pub(crate) mod docker_archive;
pub(crate) mod oci_layout;
pub(crate) mod save;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use tempfile::TempDir;

use crate::digest::{Digest, HashingWriter};
use crate::error::{ImageError, IoContext};
use crate::reference::Reference;

/// Symlink hops followed inside an archive before giving up.
const MAX_LINK_HOPS: usize = 16;
/// Largest JSON document read from an archive.
const MAX_JSON_BYTES: u64 = 16 * 1024 * 1024;

/// A regular file of the archive, staged on disk.
#[derive(Clone, Debug)]
pub(crate) struct StagedFile {
    /// Where it was written.
    pub path: PathBuf,
    /// The sha256 of its content.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// The outer tar, staged.
pub(crate) struct StagedArchive {
    dir: TempDir,
    files: HashMap<String, StagedFile>,
    links: HashMap<String, String>,
}

/// One layer of an imported image.
#[derive(Clone, Debug)]
pub(crate) struct ImportedLayer {
    /// The layer blob as stored in the archive (maybe compressed).
    pub blob: StagedFile,
    /// Its media type (from the manifest, or derived from its compression).
    pub media_type: String,
}

/// One image found in an archive, with every blob verified.
#[derive(Debug)]
pub(crate) struct ImportedImage {
    /// Names to tag it with (normalized); empty for an untagged image.
    pub names: Vec<Reference>,
    /// The OCI/docker image manifest to store (from the archive, or synthesized for a docker-archive).
    pub manifest: Vec<u8>,
    /// The config blob.
    pub config: Vec<u8>,
    /// The config digest (the image id).
    pub config_digest: Digest,
    /// Layers, bottom-most first.
    pub layers: Vec<ImportedLayer>,
    /// `repo@sha256:…` when the image came from a registry.
    pub repo_digest: Option<String>,
    /// The image id of the image it was made from (build steps, commits).
    pub parent: Option<String>,
    /// The top layer already unpacked in overlayfs form (the directory its blob was
    /// written from, on the store's file system): adopted instead of unpacked again.
    pub unpacked_top: Option<PathBuf>,
}

impl StagedArchive {
    /// Stages the tar read from `reader` into a new directory under `parent`.
    pub(crate) fn extract(reader: impl Read, parent: &Path) -> Result<Self, ImageError> {
        let dir = tempfile::Builder::new()
            .prefix("load-")
            .tempdir_in(parent)
            .ctx(|| format!("creating a staging directory in {}", parent.display()))?;
        let mut staged = StagedArchive {
            dir,
            files: HashMap::new(),
            links: HashMap::new(),
        };
        let corrupt = |e: io::Error| {
            ImageError::InvalidArchive(format!("truncated or corrupt archive tar: {e}"))
        };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let raw = entry.path_bytes().into_owned();
            let name = normalize_path(&String::from_utf8_lossy(&raw))?;
            let kind = entry.header().entry_type();
            if kind.is_file() {
                let path = staged.dir.path().join(format!("f{}", staged.files.len()));
                let file = File::create(&path).ctx(|| format!("creating {}", path.display()))?;
                let mut writer = HashingWriter::new(file);
                io::copy(&mut entry, &mut writer).map_err(corrupt)?;
                let (digest, size, file) = writer.finish();
                file.sync_all()
                    .ctx(|| format!("syncing {}", path.display()))?;
                staged.links.remove(&name);
                staged.files.insert(name, StagedFile { path, digest, size });
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let resolved = if kind.is_symlink() {
                    let base = name.rsplit_once('/').map_or("", |(d, _)| d);
                    normalize_path(&format!("{base}/{target}"))?
                } else {
                    normalize_path(&target)?
                };
                staged.files.remove(&name);
                staged.links.insert(name, resolved);
            }
            // Directories and other entry types carry nothing an image needs.
        }
        Ok(staged)
    }

    /// Whether the archive has a file (or link to one) at `path`.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.get(path).is_ok()
    }

    /// The staged file at `path`, following links inside the archive.
    pub(crate) fn get(&self, path: &str) -> Result<&StagedFile, ImageError> {
        let mut current = normalize_path(path)?;
        for _ in 0..MAX_LINK_HOPS {
            if let Some(file) = self.files.get(&current) {
                return Ok(file);
            }
            match self.links.get(&current) {
                Some(next) => current = next.clone(),
                None => break,
            }
        }
        Err(ImageError::InvalidArchive(format!(
            "{path:?} is missing from the archive"
        )))
    }

    /// The blob `blobs/sha256/<hex>` of an OCI layout, verified against `digest` and `size`.
    pub(crate) fn blob(
        &self,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<&StagedFile, ImageError> {
        let path = format!("blobs/sha256/{}", digest.hex());
        let file = self.get(&path)?;
        verify(&path, file, digest, size)?;
        Ok(file)
    }

    /// Reads a small file.
    pub(crate) fn read_bytes(&self, file: &StagedFile) -> Result<Vec<u8>, ImageError> {
        if file.size > MAX_JSON_BYTES {
            return Err(ImageError::InvalidArchive(format!(
                "metadata file of {} bytes is too large",
                file.size
            )));
        }
        std::fs::read(&file.path).ctx(|| format!("reading {}", file.path.display()))
    }

    /// Parses the JSON file at `path`.
    pub(crate) fn read_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ImageError> {
        let bytes = self.read_bytes(self.get(path)?)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::json(format!("parsing {path} in the archive"), e))
    }
}

/// Checks a staged file against the digest (and size) that names it.
pub(crate) fn verify(
    what: &str,
    file: &StagedFile,
    digest: &Digest,
    size: Option<u64>,
) -> Result<(), ImageError> {
    if &file.digest != digest {
        return Err(ImageError::DigestMismatch {
            what: what.to_owned(),
            expected: digest.to_string(),
            actual: file.digest.to_string(),
        });
    }
    if let Some(expected) = size {
        if expected != file.size {
            return Err(ImageError::SizeMismatch {
                what: what.to_owned(),
                expected,
                actual: file.size,
            });
        }
    }
    Ok(())
}

/// Normalizes a path inside the archive: no leading `/` or `./`, no empty or `.` components,
/// `..` resolved lexically and refused if it climbs above the archive root.
fn normalize_path(path: &str) -> Result<String, ImageError> {
    let mut out: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(ImageError::InvalidArchive(format!(
                        "path {path:?} leaves the archive"
                    )));
                }
            }
            c => out.push(c),
        }
    }
    Ok(out.join("/"))
}

/// Parses a tag-like name from an archive, logging and dropping invalid ones.
pub(crate) fn parse_name(name: &str) -> Option<Reference> {
    match Reference::parse(name) {
        Ok(r) if r.digest().is_none() => Some(r.with_default_tag()),
        Ok(_) => {
            tracing::warn!(%name, "ignoring a digest reference as an image name");
            None
        }
        Err(e) => {
            tracing::warn!(%name, error = %e, "ignoring an invalid image name in the archive");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_archive_paths() {
        assert_eq!(normalize_path("./a//b/").unwrap(), "a/b");
        assert_eq!(normalize_path("a/../b").unwrap(), "b");
        assert!(normalize_path("../x").is_err());
        assert_eq!(normalize_path("/abs").unwrap(), "abs");
    }
}
