//! Writing images out of the store: [`ImageStore::save`].
//!
//! Two formats, both streamed through a `tar::Builder` (no whole-archive
//! buffering; a compressed layer is decompressed into one temporary file in
//! the store's staging directory, because a tar header needs its size first):
//!
//! * [`SaveFormat::DockerArchive`], as `docker save` (before 25) writes it:
//!   `<diff-id hex>/layer.tar` (uncompressed, checked against the diff id on
//!   the way), `<config hex>.json`, `manifest.json` (`Config`, `RepoTags`,
//!   `Layers`) and `repositories`.
//! * [`SaveFormat::OciLayout`]: `oci-layout`, `blobs/sha256/<hex>` with the
//!   stored blobs unchanged (so every digest stays), and `index.json` with one
//!   manifest descriptor per tag, annotated with
//!   `org.opencontainers.image.ref.name` (the tag) and
//!   `io.containerd.image.name` (the full name), as containerd and docker 25+ write it.
//!
//! Several images go into one archive; a layer or blob shared by several is
//! written once.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use serde_json::{json, Value};

use crate::compression::{decompress, Compression};
use crate::digest::{Digest, HashingWriter};
use crate::error::{ImageError, IoContext};
use crate::index::{ImageRecord, Index};
use crate::lookup::{find_image, tag_key};
use crate::reference::Reference;
use crate::store::ImageStore;

use super::oci_layout::MEDIA_OCI_MANIFEST;

/// The store's index file (read from disk: it is only ever replaced whole, by rename).
const INDEX_FILE: &str = "images.json";
/// OCI image index media type.
const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Annotation naming the tag of a manifest in an OCI layout.
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation naming the full image name (containerd, docker 25+).
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// The archive format [`ImageStore::save`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveFormat {
    /// `docker save`'s format: `manifest.json`, `<hex>/layer.tar`, `<config>.json`, `repositories`.
    DockerArchive,
    /// An OCI image layout: `oci-layout`, `index.json`, `blobs/sha256/…`.
    OciLayout,
}

/// One image to write, with the tags it is saved under.
struct Selected {
    record: ImageRecord,
    tags: Vec<Reference>,
}

impl ImageStore {
    /// Writes the images named by `references` (tags, digest references, ids
    /// or id prefixes) as one tar archive in `format` to `out`.
    ///
    /// An image named by tag is saved under that tag (several references to
    /// one image merge their tags); one named by id is saved untagged, as
    /// docker does. Fails with [`ImageError::NotFound`] before writing
    /// anything when a reference matches no image.
    pub fn save(
        &self,
        references: &[&str],
        format: SaveFormat,
        out: impl Write,
    ) -> Result<(), ImageError> {
        if references.is_empty() {
            return Err(ImageError::InvalidReference {
                reference: String::new(),
                reason: "no image to save".into(),
            });
        }
        let index = Index::read(&self.root().join(INDEX_FILE))?;
        let selected = select(&index, references)?;
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Deterministic);
        match format {
            SaveFormat::DockerArchive => self.write_docker_archive(&mut builder, &selected)?,
            SaveFormat::OciLayout => self.write_oci_layout(&mut builder, &selected)?,
        }
        let mut out = builder
            .into_inner()
            .ctx(|| "finishing the archive".to_owned())?;
        out.flush().ctx(|| "flushing the archive".to_owned())
    }

    fn write_docker_archive<W: Write>(
        &self,
        builder: &mut tar::Builder<W>,
        selected: &[Selected],
    ) -> Result<(), ImageError> {
        let mut written: HashSet<Digest> = HashSet::new();
        let mut manifest = Vec::with_capacity(selected.len());
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for image in selected {
            let mut layers = Vec::with_capacity(image.record.layers.len());
            for layer in &image.record.layers {
                let hex = layer.diff_id.hex().to_owned();
                let path = format!("{hex}/layer.tar");
                if written.insert(layer.diff_id.clone()) {
                    append_dir(builder, &format!("{hex}/"))?;
                    self.append_uncompressed_layer(builder, &path, &layer.blob, &layer.diff_id)?;
                }
                layers.push(path);
            }
            let config_path = format!("{}.json", image.record.config.hex());
            if written.insert(image.record.config.clone()) {
                let blob = self.blobs.path(&image.record.config);
                append_file(builder, &config_path, &blob)?;
            }
            let repo_tags: Vec<String> = image.tags.iter().map(ToString::to_string).collect();
            if let Some(top) = image.record.layers.last() {
                for tag in &image.tags {
                    repositories.entry(tag.repository()).or_default().insert(
                        tag.tag().unwrap_or("latest").to_owned(),
                        top.diff_id.hex().to_owned(),
                    );
                }
            }
            manifest.push(json!({
                "Config": config_path,
                "RepoTags": if repo_tags.is_empty() { Value::Null } else { json!(repo_tags) },
                "Layers": layers,
            }));
        }
        append_json(builder, "manifest.json", &Value::Array(manifest))?;
        if !repositories.is_empty() {
            append_json(builder, "repositories", &json!(repositories))?;
        }
        Ok(())
    }

    fn write_oci_layout<W: Write>(
        &self,
        builder: &mut tar::Builder<W>,
        selected: &[Selected],
    ) -> Result<(), ImageError> {
        append_json(
            builder,
            "oci-layout",
            &json!({ "imageLayoutVersion": "1.0.0" }),
        )?;
        append_dir(builder, "blobs/")?;
        append_dir(builder, "blobs/sha256/")?;
        let mut written: HashSet<Digest> = HashSet::new();
        let mut descriptors = Vec::new();
        for image in selected {
            let record = &image.record;
            let blobs = [&record.manifest, &record.config]
                .into_iter()
                .chain(record.layers.iter().map(|l| &l.blob));
            for digest in blobs {
                if written.insert(digest.clone()) {
                    let path = self.blobs.path(digest);
                    append_file(builder, &format!("blobs/sha256/{}", digest.hex()), &path)?;
                }
            }
            let manifest = self.blobs.read(&record.manifest)?;
            let media_type = serde_json::from_slice::<Value>(&manifest)
                .ok()
                .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| MEDIA_OCI_MANIFEST.to_owned());
            let descriptor = |annotations: Option<Value>| {
                let mut d = json!({
                    "mediaType": media_type,
                    "digest": record.manifest.to_string(),
                    "size": manifest.len(),
                });
                if let (Some(a), Some(obj)) = (annotations, d.as_object_mut()) {
                    obj.insert("annotations".into(), a);
                }
                d
            };
            if image.tags.is_empty() {
                descriptors.push(descriptor(None));
            }
            for tag in &image.tags {
                let full = format!(
                    "{}:{}",
                    tag.full_repository(),
                    tag.tag().unwrap_or("latest")
                );
                descriptors.push(descriptor(Some(json!({
                    ANNOTATION_IMAGE_NAME: full,
                    ANNOTATION_REF_NAME: tag.tag().unwrap_or("latest"),
                }))));
            }
        }
        append_json(
            builder,
            "index.json",
            &json!({
                "schemaVersion": 2,
                "mediaType": MEDIA_OCI_INDEX,
                "manifests": descriptors,
            }),
        )
    }

    /// Appends a layer as an uncompressed tar at `path`, checking it against `diff_id`.
    fn append_uncompressed_layer<W: Write>(
        &self,
        builder: &mut tar::Builder<W>,
        path: &str,
        blob: &Digest,
        diff_id: &Digest,
    ) -> Result<(), ImageError> {
        let blob_path = self.blobs.path(blob);
        let mut file = File::open(&blob_path).ctx(|| format!("opening blob {blob}"))?;
        let mut head = [0u8; 4];
        let n = read_head(&mut file, &mut head).ctx(|| format!("reading blob {blob}"))?;
        if Compression::detect(&head[..n]) == Compression::None {
            // Stored as a plain tar: its digest is the diff id, checked on load.
            return append_file(builder, path, &blob_path);
        }
        file.rewind().ctx(|| format!("reading blob {blob}"))?;
        let (_, mut reader) = decompress(file).ctx(|| format!("decompressing blob {blob}"))?;
        let tmp = tempfile::tempfile_in(&self.tmp)
            .ctx(|| "creating a temporary file for a layer".to_owned())?;
        let mut writer = HashingWriter::new(tmp);
        io::copy(&mut reader, &mut writer).ctx(|| format!("decompressing blob {blob}"))?;
        let (digest, size, mut tmp) = writer.finish();
        if &digest != diff_id {
            return Err(ImageError::DigestMismatch {
                what: format!("stored layer blob {blob}"),
                expected: diff_id.to_string(),
                actual: digest.to_string(),
            });
        }
        tmp.rewind().ctx(|| "rewinding a layer file".to_owned())?;
        let mut header = file_header(size);
        builder
            .append_data(&mut header, path, tmp)
            .ctx(|| format!("writing {path} to the archive"))
    }
}

/// Resolves every reference, merging those that name the same image.
fn select(index: &Index, references: &[&str]) -> Result<Vec<Selected>, ImageError> {
    let mut out: Vec<(String, Selected)> = Vec::new();
    for reference in references {
        let id = find_image(index, reference)?;
        let record = index
            .images
            .get(&id)
            .ok_or_else(|| ImageError::NotFound((*reference).to_owned()))?;
        let tag = tag_key(reference)
            .filter(|key| index.tags.get(key) == Some(&id))
            .and_then(|key| Reference::parse(&key).ok());
        let position = match out.iter().position(|(i, _)| *i == id) {
            Some(p) => p,
            None => {
                out.push((
                    id.clone(),
                    Selected {
                        record: record.clone(),
                        tags: Vec::new(),
                    },
                ));
                out.len() - 1
            }
        };
        if let Some(tag) = tag {
            let tags = &mut out[position].1.tags;
            if !tags.iter().any(|t| t.to_string() == tag.to_string()) {
                tags.push(tag);
            }
        }
    }
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

/// Reads up to `buf.len()` bytes (fewer only at end of file).
fn read_head(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn append_dir<W: Write>(builder: &mut tar::Builder<W>, path: &str) -> Result<(), ImageError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(0);
    builder
        .append_data(&mut header, path, io::empty())
        .ctx(|| format!("writing {path} to the archive"))
}

/// Appends the file at `source` (a stored blob) as `path`.
fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    source: &Path,
) -> Result<(), ImageError> {
    let file = File::open(source).ctx(|| format!("opening {}", source.display()))?;
    let size = file
        .metadata()
        .ctx(|| format!("reading the size of {}", source.display()))?
        .len();
    let mut header = file_header(size);
    // `take` guards against a file that grows while it is copied.
    builder
        .append_data(&mut header, path, file.take(size))
        .ctx(|| format!("writing {path} to the archive"))
}

fn append_json<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    value: &Value,
) -> Result<(), ImageError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| ImageError::json(format!("serializing {path}"), e))?;
    let mut header = file_header(bytes.len() as u64);
    builder
        .append_data(&mut header, path, &bytes[..])
        .ctx(|| format!("writing {path} to the archive"))
}
