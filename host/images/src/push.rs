//! [`ImageStore::push`]: sending a stored image to a registry.
//!
//! Blobs are kept in their distributed form, so the layers, the config and the
//! manifest go up byte for byte as they were pulled or loaded: the pushed
//! manifest has the digest the image already had. Per layer, as docker does:
//! a `HEAD` finds blobs the repository already has ("Layer already exists");
//! a blob the store knows to be in another repository of the same registry is
//! mounted from there ("Mounted from <repo>"); anything else is uploaded, in
//! one request or in [`PushOptions::chunk_size`] chunks ("Pushing", "Pushed").
//! Up to [`CONCURRENT_UPLOADS`] layers go up at once; the first failure
//! stops the rest. Then the config and the manifest, tagged. Where blobs went is recorded (see
//! `blob_sources`) so later pushes to sibling repositories can mount them.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::{ImageError, IoContext};
use crate::index::ImageRecord;
use crate::reference::Reference;
use crate::registry::auth::{choose_credentials, Credentials};
use crate::registry::client::RegistryClient;
use crate::registry::manifest::{DOCKER_MANIFEST_V2, OCI_MANIFEST};
use crate::registry::upload::Mount;
use crate::registry::RegistryHosts;
use crate::store::ImageStore;
use crate::workers::run_bounded;

/// Layer uploads running at once (dockerd's `max-concurrent-uploads` default).
const CONCURRENT_UPLOADS: usize = 5;
/// Blobs larger than this are uploaded in chunks of this size by default.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// How to push.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// A docker-style `config.json` to read credentials from (`auths.<registry>.auth`).
    pub auth_config_path: Option<PathBuf>,
    /// Credentials given directly (e.g. the Engine API's `X-Registry-Auth`); they win over the file.
    pub credentials: Option<Credentials>,
    /// Insecure registries, mirrors and TLS material.
    pub hosts: RegistryHosts,
    /// Blobs larger than this go up in `PATCH` chunks of this size; smaller ones in one `PUT`.
    pub chunk_size: u64,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            auth_config_path: None,
            credentials: None,
            hosts: RegistryHosts::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// What is happening to one layer, in docker's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushStatus {
    /// Queued.
    Preparing,
    /// Waiting for its turn.
    Waiting,
    /// Bytes going up (`current`/`total`).
    Pushing,
    /// Uploaded.
    Pushed,
    /// The repository already had the blob.
    AlreadyExists,
    /// The registry linked the blob from this repository (its path) instead of an upload.
    MountedFrom(String),
}

impl PushStatus {
    /// The status text docker prints.
    pub fn text(&self) -> Cow<'static, str> {
        match self {
            PushStatus::Preparing => "Preparing".into(),
            PushStatus::Waiting => "Waiting".into(),
            PushStatus::Pushing => "Pushing".into(),
            PushStatus::Pushed => "Pushed".into(),
            PushStatus::AlreadyExists => "Layer already exists".into(),
            PushStatus::MountedFrom(repo) => format!("Mounted from {repo}").into(),
        }
    }
}

impl fmt::Display for PushStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// One progress event of a push, about one layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushProgress {
    /// The layer: the first 12 hex digits of its blob digest (docker's id).
    pub id: String,
    /// What is happening.
    pub status: PushStatus,
    /// Bytes sent (pushing), if meaningful.
    pub current: Option<u64>,
    /// The blob's size, if meaningful.
    pub total: Option<u64>,
}

/// What a push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedImage {
    /// The tagged reference pushed, familiar form (`127.0.0.1:5000/x:latest`).
    pub reference: String,
    /// The tag.
    pub tag: String,
    /// The manifest's digest (`sha256:…`), as the registry now serves it.
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// The image id (`sha256:<config digest>`).
    pub image_id: String,
}

/// One layer blob to send.
struct LayerBlob {
    digest: Digest,
    size: u64,
    id: String,
    /// A repository path on the same registry that holds the blob, to mount from.
    mount_from: Option<String>,
}

impl ImageStore {
    /// Pushes the image tagged `reference` (`127.0.0.1:5000/x`, `host/repo:tag`;
    /// `:latest` by default) to its registry under that tag. `progress` hears
    /// about every layer, on the calling thread.
    ///
    /// Errors: [`ImageError::InvalidReference`] for a digest reference,
    /// [`ImageError::NotFound`] when no image has that tag,
    /// [`ImageError::Unauthorized`] for missing or refused credentials,
    /// [`ImageError::Registry`] (naming the registry and the blob) for
    /// registry and transport failures.
    pub fn push(
        &self,
        reference: &str,
        opts: &PushOptions,
        progress: &dyn Fn(PushProgress),
    ) -> Result<PushedImage, ImageError> {
        let parsed = Reference::parse(reference)?;
        if parsed.digest().is_some() {
            return Err(ImageError::InvalidReference {
                reference: reference.to_owned(),
                reason: "cannot push a digest reference: push a tag".into(),
            });
        }
        let parsed = parsed.with_default_tag();
        let tag = parsed
            .tag()
            .unwrap_or(crate::reference::DEFAULT_TAG)
            .to_owned();
        let key = parsed.to_string();
        let (image_id, record) = {
            let index = self.read_index();
            let id = index
                .tags
                .get(&key)
                .cloned()
                .ok_or_else(|| ImageError::NotFound(key.clone()))?;
            let record = index
                .images
                .get(&id)
                .cloned()
                .ok_or_else(|| ImageError::NotFound(key.clone()))?;
            (id, record)
        };
        let credentials = choose_credentials(
            opts.credentials.as_ref(),
            opts.auth_config_path.as_deref(),
            parsed.domain(),
        )?;
        let client = RegistryClient::new(&parsed, credentials, &opts.hosts)?;
        let layers = self.layer_blobs(&record, &parsed);
        let mut scope = format!("repository:{}:pull,push", parsed.path());
        let sources: BTreeSet<&str> = layers
            .iter()
            .filter_map(|l| l.mount_from.as_deref())
            .collect();
        for source in sources {
            scope.push_str(&format!(" repository:{source}:pull"));
        }
        client.authorize_scope(&scope)?;
        let (manifest, media_type) = self.manifest_for_push(&record)?;
        let config = self.blobs.read(&record.config)?;

        // docker lists the top-most layer first.
        for layer in layers.iter().rev() {
            progress(event(&layer.id, PushStatus::Preparing));
        }
        for layer in layers.iter().rev().skip(CONCURRENT_UPLOADS) {
            progress(event(&layer.id, PushStatus::Waiting));
        }
        run_bounded(
            layers.iter().rev().collect(),
            CONCURRENT_UPLOADS,
            |layer, _cancel, tx| {
                self.push_layer(&client, layer, opts.chunk_size, &|p| {
                    let _ = tx.send(p);
                })
            },
            progress,
        )?;
        client.upload_bytes(&record.config, &config)?;
        let digest = client.put_manifest(&tag, &media_type, &manifest)?;

        let mut pushed: Vec<Digest> = layers.iter().map(|l| l.digest.clone()).collect();
        pushed.push(record.config.clone());
        self.record_blob_sources(&parsed.full_repository(), &pushed);
        Ok(PushedImage {
            reference: key,
            tag,
            digest: digest.to_string(),
            size: manifest.len() as u64,
            image_id,
        })
    }

    /// The layer blobs of `record`, each with a repository to mount it from
    /// when the store knows one on `target`'s registry.
    fn layer_blobs(&self, record: &ImageRecord, target: &Reference) -> Vec<LayerBlob> {
        let prefix = format!("{}/", target.domain());
        record
            .layers
            .iter()
            .map(|l| LayerBlob {
                digest: l.blob.clone(),
                size: l.blob_size,
                id: l.blob.hex()[..12].to_owned(),
                mount_from: self
                    .blob_sources(&l.blob)
                    .iter()
                    .filter_map(|r| r.strip_prefix(&prefix))
                    .find(|path| *path != target.path())
                    .map(str::to_owned),
            })
            .collect()
    }

    fn push_layer(
        &self,
        client: &RegistryClient,
        layer: &LayerBlob,
        chunk_size: u64,
        progress: &dyn Fn(PushProgress),
    ) -> Result<(), ImageError> {
        if client.blob_exists(&layer.digest)? {
            progress(event(&layer.id, PushStatus::AlreadyExists));
            return Ok(());
        }
        let location = match &layer.mount_from {
            Some(from) => match client.mount_blob(&layer.digest, from)? {
                Mount::Mounted => {
                    progress(event(&layer.id, PushStatus::MountedFrom(from.clone())));
                    return Ok(());
                }
                Mount::Upload(location) => {
                    tracing::info!(digest = %layer.digest, %from, "the registry did not mount the blob; uploading it");
                    location
                }
            },
            None => client.start_upload(&layer.digest)?,
        };
        let path = self.blobs.path(&layer.digest);
        let mut file = File::open(&path).ctx(|| format!("opening {}", path.display()))?;
        let pushing = |sent: u64| {
            progress(PushProgress {
                id: layer.id.clone(),
                status: PushStatus::Pushing,
                current: Some(sent),
                total: Some(layer.size),
            })
        };
        pushing(0);
        client.upload_blob(
            location,
            &mut file,
            &layer.digest,
            layer.size,
            chunk_size,
            &mut |sent| pushing(sent),
        )?;
        progress(event(&layer.id, PushStatus::Pushed));
        Ok(())
    }

    /// The stored manifest and its media type; an OCI (or Docker, for Docker
    /// layer media types) manifest built from the record when the stored one is
    /// missing or does not describe the record.
    fn manifest_for_push(&self, record: &ImageRecord) -> Result<(Vec<u8>, String), ImageError> {
        if let Ok(bytes) = self.blobs.read(&record.manifest) {
            if let Some(media_type) = describes(&bytes, record) {
                return Ok((bytes, media_type));
            }
            tracing::warn!(manifest = %record.manifest, "the stored manifest does not match the image; building one");
        }
        let config_size = std::fs::metadata(self.blobs.path(&record.config))
            .ctx(|| format!("reading the size of config {}", record.config))?
            .len();
        let docker = !record.layers.is_empty()
            && record
                .layers
                .iter()
                .all(|l| l.media_type.starts_with("application/vnd.docker."));
        let (media_type, config_type) = if docker {
            (DOCKER_MANIFEST_V2, DOCKER_CONFIG)
        } else {
            (OCI_MANIFEST, OCI_CONFIG)
        };
        let layers: Vec<serde_json::Value> = record
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "mediaType": l.media_type,
                    "digest": l.blob.to_string(),
                    "size": l.blob_size,
                })
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": config_type,
                "digest": record.config.to_string(),
                "size": config_size,
            },
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::json("serializing a manifest to push", e))?;
        Ok((bytes, media_type.to_owned()))
    }
}

/// The media type of `bytes` when they are an image manifest naming exactly
/// the record's config and layer blobs, in order.
fn describes(bytes: &[u8], record: &ImageRecord) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let config = value.get("config")?.get("digest")?.as_str()?;
    let layers: Vec<&str> = value
        .get("layers")?
        .as_array()?
        .iter()
        .map(|l| l.get("digest").and_then(|d| d.as_str()))
        .collect::<Option<_>>()?;
    let wanted: Vec<String> = record.layers.iter().map(|l| l.blob.to_string()).collect();
    if config != record.config.to_string() || layers != wanted {
        return None;
    }
    Some(
        value
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or(OCI_MANIFEST)
            .to_owned(),
    )
}

fn event(id: &str, status: PushStatus) -> PushProgress {
    PushProgress {
        id: id.to_owned(),
        status,
        current: None,
        total: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::LayerRecord;

    fn record() -> ImageRecord {
        let d = |s: &str| Digest::of_bytes(s.as_bytes());
        ImageRecord {
            config: d("config"),
            manifest: d("manifest"),
            layers: vec![LayerRecord {
                chain_id: d("chain"),
                diff_id: d("diff"),
                blob: d("blob"),
                media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
                blob_size: 4,
                size: 10,
            }],
            parent: None,
            loaded_at: 0,
            repo_digests: Vec::new(),
        }
    }

    #[test]
    fn a_stored_manifest_is_used_only_when_it_describes_the_image() {
        let r = record();
        let good = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_V2,
            "config": {"digest": r.config.to_string(), "size": 6},
            "layers": [{"digest": r.layers[0].blob.to_string(), "size": 4}],
        });
        let bytes = serde_json::to_vec(&good).unwrap();
        assert_eq!(describes(&bytes, &r).as_deref(), Some(DOCKER_MANIFEST_V2));
        let mut other = good.clone();
        other["layers"] = serde_json::json!([]);
        assert_eq!(describes(&serde_json::to_vec(&other).unwrap(), &r), None);
        let mut untyped = good;
        untyped.as_object_mut().unwrap().remove("mediaType");
        assert_eq!(
            describes(&serde_json::to_vec(&untyped).unwrap(), &r).as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(describes(b"not json", &r), None);
    }

    #[test]
    fn statuses_read_like_docker() {
        assert_eq!(
            PushStatus::AlreadyExists.to_string(),
            "Layer already exists"
        );
        assert_eq!(
            PushStatus::MountedFrom("test/a".into()).to_string(),
            "Mounted from test/a"
        );
        assert_eq!(PushStatus::Pushed.to_string(), "Pushed");
    }

    #[test]
    fn a_missing_manifest_is_built_from_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let r = record();
        store.blobs.put_bytes(&r.config, b"config").unwrap();
        let (bytes, media_type) = store.manifest_for_push(&r).unwrap();
        assert_eq!(media_type, DOCKER_MANIFEST_V2);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["config"]["mediaType"], DOCKER_CONFIG);
        assert_eq!(v["config"]["size"], 6);
        assert_eq!(v["layers"][0]["digest"], r.layers[0].blob.to_string());
        assert_eq!(describes(&bytes, &r).as_deref(), Some(DOCKER_MANIFEST_V2));
    }
}
