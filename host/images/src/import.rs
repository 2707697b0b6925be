//! [`ImageStore::import`]: a one-layer image from a root-filesystem tarball,
//! as `docker import` makes it.
//!
//! The input is staged (hashed on the way) in the store's `tmp/`, checked to
//! be a tar (after gzip/zstd decompression) while its uncompressed stream is
//! hashed for the diff id, and stored as given. A config (platform, `created`,
//! the `--change` instructions, one history entry) and an OCI manifest are
//! synthesized, and the image goes through the same commit path as `load` and
//! `pull`: the unpacker's safety checks apply, and a failure leaves the store
//! as it was.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::archive::oci_layout::{Descriptor, Manifest, MEDIA_OCI_CONFIG, MEDIA_OCI_MANIFEST};
use crate::archive::{ImportedImage, ImportedLayer, StagedFile};
use crate::changes::apply_changes;
use crate::compression::{decompress, Compression};
use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::error::{ImageError, IoContext};
use crate::image::LoadedImage;
use crate::reference::Reference;
use crate::registry::Platform;
use crate::store::ImageStore;

/// The history comment when none is given (dockerd's, for input read from the request body).
const DEFAULT_MESSAGE: &str = "Imported from -";
/// Size of a tar header block.
const TAR_BLOCK: usize = 512;

/// How [`ImageStore::import`] makes the image.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Tag for the new image (`repo[:tag]`, `:latest` by default); None: untagged.
    pub reference: Option<String>,
    /// History comment; default "Imported from -".
    pub message: Option<String>,
    /// Dockerfile instructions applied to the image config, as `docker import --change` takes them:
    /// CMD, ENTRYPOINT (JSON array or shell form -> ["/bin/sh","-c",..]), ENV (k=v [k=v...] or "k v"),
    /// WORKDIR, USER, EXPOSE (80, 80/udp), LABEL k=v..., STOPSIGNAL, VOLUME (JSON array or words).
    /// Anything else: ImageError::InvalidChange naming it (dockerd: `<instr> is not a valid change command`).
    pub changes: Vec<String>,
    /// Platform recorded in the config; default Platform::host().
    pub platform: Option<Platform>,
}

impl ImageStore {
    /// Stores the tar (plain, gzip or zstd: detected) read from `source` as a one-layer image.
    /// Returns the new image (its id `sha256:<config digest>`, and the reference when tagged).
    pub fn import(
        &self,
        source: &mut dyn Read,
        opts: &ImportOptions,
    ) -> Result<LoadedImage, ImageError> {
        // Everything that can be refused without reading the input is checked first.
        let names = match &opts.reference {
            Some(reference) => vec![tag_reference(reference)?],
            None => Vec::new(),
        };
        let mut container_config = Map::new();
        apply_changes(&mut container_config, &opts.changes)?;

        let staging = tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in(&self.tmp)
            .ctx(|| format!("creating a staging directory in {}", self.tmp.display()))?;
        let blob = stage_input(source, &staging.path().join("layer"))?;
        let (compression, diff_id) = inspect_layer(&blob)?;

        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        let created = rfc3339_utc(SystemTime::now());
        let mut config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "created": created,
            "config": Value::Object(container_config),
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
            "history": [{
                "created": created,
                "comment": opts.message.as_deref().unwrap_or(DEFAULT_MESSAGE),
            }],
        });
        if let (Some(variant), Some(object)) = (&platform.variant, config.as_object_mut()) {
            object.insert("variant".into(), Value::String(variant.clone()));
        }
        let config = serde_json::to_vec(&config)
            .map_err(|e| ImageError::json("serializing the imported image's config", e))?;
        let layer = ImportedLayer {
            media_type: compression.oci_layer_media_type().to_owned(),
            blob,
        };
        let loaded = self.commit_synthesized(None, None, names, config, vec![layer])?;
        drop(staging);
        tracing::info!(id = %loaded.id, reference = %loaded.reference, "imported an image");
        Ok(loaded)
    }
}

impl ImageStore {
    /// Commits an image made here (import, commit): an OCI manifest naming
    /// `config` and `layers` (bottom-most first), through the shared commit path.
    pub(crate) fn commit_synthesized(
        &self,
        parent: Option<String>,
        unpacked_top: Option<std::path::PathBuf>,
        names: Vec<Reference>,
        config: Vec<u8>,
        layers: Vec<ImportedLayer>,
    ) -> Result<LoadedImage, ImageError> {
        let config_digest = Digest::of_bytes(&config);
        let descriptor = |media_type: &str, digest: &Digest, size: u64| Descriptor {
            media_type: media_type.to_owned(),
            digest: digest.clone(),
            size,
            annotations: Default::default(),
            platform: None,
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_MANIFEST.to_owned()),
            config: descriptor(MEDIA_OCI_CONFIG, &config_digest, config.len() as u64),
            layers: layers
                .iter()
                .map(|l| descriptor(&l.media_type, &l.blob.digest, l.blob.size))
                .collect(),
        };
        let manifest = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::json("serializing a manifest", e))?;
        let image = ImportedImage {
            names,
            manifest,
            config,
            config_digest,
            layers,
            repo_digest: None,
            parent,
            unpacked_top,
        };
        let loaded = self.commit_images(std::slice::from_ref(&image), &mut |_| {})?;
        loaded
            .into_iter()
            .next()
            .ok_or_else(|| ImageError::InvalidArchive("the new image was not committed".into()))
    }
}

/// Parses the tag to give the imported image (`:latest` by default; no digest).
pub(crate) fn tag_reference(reference: &str) -> Result<Reference, ImageError> {
    let parsed = Reference::parse(reference)?;
    if parsed.digest().is_some() {
        return Err(ImageError::InvalidReference {
            reference: reference.to_owned(),
            reason: "an imported image cannot be tagged with a digest reference".into(),
        });
    }
    Ok(parsed.with_default_tag())
}

/// Copies the input to `path`, hashing it.
fn stage_input(source: &mut dyn Read, path: &Path) -> Result<StagedFile, ImageError> {
    let file = File::create(path).ctx(|| format!("creating {}", path.display()))?;
    let mut writer = HashingWriter::new(file);
    io::copy(source, &mut writer).ctx(|| "reading the tarball to import".to_owned())?;
    let (digest, size, file) = writer.finish();
    file.sync_all()
        .ctx(|| format!("syncing {}", path.display()))?;
    if size == 0 {
        return Err(ImageError::InvalidArchive(
            "the input to import is empty (expected a tar archive)".into(),
        ));
    }
    Ok(StagedFile {
        path: path.to_owned(),
        digest,
        size,
    })
}

/// Detects the compression, checks the content starts like a tar, and hashes
/// the uncompressed stream (the diff id).
fn inspect_layer(blob: &StagedFile) -> Result<(Compression, Digest), ImageError> {
    let file = File::open(&blob.path).ctx(|| format!("opening {}", blob.path.display()))?;
    let (compression, reader) = decompress(BufReader::new(file))
        .map_err(|e| ImageError::InvalidArchive(format!("reading the input to import: {e}")))?;
    let corrupt = |e: io::Error| {
        ImageError::InvalidArchive(format!(
            "the input to import is not a valid {} stream: {e}",
            compression_name(compression)
        ))
    };
    let mut reader = HashingReader::new(reader);
    let mut header = Vec::with_capacity(TAR_BLOCK);
    (&mut reader)
        .take(TAR_BLOCK as u64)
        .read_to_end(&mut header)
        .map_err(corrupt)?;
    if header.len() < TAR_BLOCK {
        return Err(ImageError::InvalidArchive(format!(
            "the input to import is not a tar archive: {} uncompressed bytes, shorter than a tar header",
            header.len()
        )));
    }
    if !is_tar_header(&header) {
        return Err(ImageError::InvalidArchive(format!(
            "the input to import is not a tar archive ({}): its first block is not a tar header",
            compression_name(compression)
        )));
    }
    let (diff_id, _) = reader.finish().map_err(corrupt)?;
    Ok((compression, diff_id))
}

fn compression_name(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "uncompressed",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

/// Whether a 512-byte block is a tar header (its checksum matches; Go's
/// archive/tar accepts the unsigned or the historic signed sum) or the
/// all-zero block that ends an empty archive.
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() != TAR_BLOCK {
        return false;
    }
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let text = field.trim_matches(|c: char| c == '\0' || c == ' ');
    let Ok(recorded) = i64::from_str_radix(text, 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    recorded == unsigned || recorded == signed
}

/// `2026-11-23T18:41:10.123456789Z` (RFC 3339, UTC, trailing zeros of the fraction
/// dropped, as Go's `RFC3339Nano`).
pub(crate) fn rfc3339_utc(time: SystemTime) -> String {
    let t = chrono::DateTime::<chrono::Utc>::from(time.max(UNIX_EPOCH));
    let mut out = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = chrono::Timelike::nanosecond(&t);
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339_utc(t), "2023-11-14T22:13:20.12Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_utc(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn recognizes_tar_headers() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_cksum();
        builder.append_data(&mut header, "a", &b"x"[..]).unwrap();
        let tar = builder.into_inner().unwrap();
        assert!(is_tar_header(&tar[..TAR_BLOCK]));
        assert!(is_tar_header(&[0u8; TAR_BLOCK]));
        let mut broken = tar[..TAR_BLOCK].to_vec();
        broken[0] ^= 1;
        assert!(!is_tar_header(&broken));
        assert!(!is_tar_header(&[b'x'; TAR_BLOCK]));
    }
}
