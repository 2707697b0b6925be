//! [`ImageStore::pull`]: fetching an image from a registry into the store.
//!
//! Manifest and config first (digests and sizes verified), then the layer
//! blobs that are not stored yet, a few at a time, into `tmp/downloads/`
//! (`<hex>.partial`, kept after an interrupted download and resumed with a
//! `Range` request by the next pull in this store's lifetime; `tmp/` is
//! emptied when the store is opened). Every blob is verified before the
//! shared commit path (`commit_images`, as `load` uses) unpacks the layers
//! and makes the image visible; a failed pull leaves the store as it was.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use crate::archive::{ImportedImage, ImportedLayer, StagedFile};
use crate::digest::Digest;
use crate::error::{ImageError, IoContext};
use crate::reference::Reference;
use crate::registry::auth::choose_credentials;
use crate::registry::client::RegistryClient;
use crate::registry::download::verify_bytes;
use crate::registry::manifest::{self, Fetched};
use crate::registry::{LayerStatus, PullOptions, PullProgress, PulledImage};
use crate::store::{ImageStore, LayerEvent};
use crate::workers::run_bounded;

/// Layer downloads running at once.
const CONCURRENT_DOWNLOADS: usize = 3;
const DOWNLOADS_DIR: &str = "downloads";

/// One layer blob to fetch.
struct Job {
    digest: Digest,
    size: u64,
    id: String,
}

impl ImageStore {
    /// Pulls `reference` (`busybox`, `host:port/repo:tag`, `repo@sha256:…`)
    /// from its registry, choosing `opts.platform` (default: linux on the
    /// host architecture) from a multi-platform image, and tags it (unless
    /// pulled by digest). Layers whose blobs are already stored are not
    /// downloaded ("Already exists"). `progress` hears about every layer, on
    /// the calling thread.
    ///
    /// Errors: [`ImageError::NotFound`] for an unknown repository, tag or
    /// platform, [`ImageError::Unauthorized`] for missing or refused
    /// credentials, [`ImageError::DigestMismatch`]/[`ImageError::SizeMismatch`]
    /// for content that is not what its descriptor promised,
    /// [`ImageError::Registry`] for other registry and transport failures.
    pub fn pull(
        &self,
        reference: &str,
        opts: &PullOptions,
        progress: &dyn Fn(PullProgress),
    ) -> Result<PulledImage, ImageError> {
        let parsed = Reference::parse(reference)?.with_default_tag();
        let what = parsed.to_string();
        let client = pull_client(&parsed, opts)?;
        let platform = opts.platform.clone().unwrap_or_default();

        let target = match (parsed.digest(), parsed.tag()) {
            (Some(d), _) => d.to_owned(),
            (None, Some(t)) => t.to_owned(),
            (None, None) => crate::reference::DEFAULT_TAG.to_owned(),
        };
        let (top_bytes, content_type) = client.manifest(&target, &what)?;
        let top_digest = Digest::of_bytes(&top_bytes);
        if let Some(d) = parsed.digest() {
            if top_digest.to_string() != d {
                return Err(ImageError::DigestMismatch {
                    what: format!("manifest of {what}"),
                    expected: d.to_owned(),
                    actual: top_digest.to_string(),
                });
            }
        }
        let (manifest_bytes, manifest) =
            match manifest::parse(&top_bytes, content_type.as_deref(), &what)? {
                Fetched::Manifest(m) => (top_bytes, m),
                Fetched::Index(index) => {
                    let chosen = manifest::choose(&index, &platform, &what)?;
                    let digest: Digest = chosen.digest().to_string().parse()?;
                    let (bytes, content_type) = client.manifest(&digest.to_string(), &what)?;
                    verify_bytes(
                        &format!("manifest {digest} of {what}"),
                        &bytes,
                        &digest,
                        chosen.size(),
                    )?;
                    match manifest::parse(&bytes, content_type.as_deref(), &what)? {
                        Fetched::Manifest(m) => (bytes, m),
                        Fetched::Index(_) => {
                            return Err(ImageError::Unsupported(format!(
                                "{what}: an index nested in an index"
                            )))
                        }
                    }
                }
            };
        let config_digest: Digest = manifest.config().digest().to_string().parse()?;
        let config = client.small_blob(&config_digest, manifest.config().size())?;

        let mut jobs = Vec::new();
        let mut layers = Vec::with_capacity(manifest.layers().len());
        let mut existing = HashSet::new();
        let mut ids = HashMap::new();
        for descriptor in manifest.layers() {
            let digest: Digest = descriptor.digest().to_string().parse()?;
            let size = descriptor.size();
            let id = short(&digest);
            ids.insert(digest.clone(), id.clone());
            let stored = self.blobs.path(&digest);
            if stored.exists() {
                progress(event(&id, LayerStatus::AlreadyExists));
                existing.insert(digest.clone());
                layers.push(Some(StagedFile {
                    path: stored,
                    digest,
                    size,
                }));
            } else {
                progress(event(&id, LayerStatus::PullingFsLayer));
                jobs.push((layers.len(), Job { digest, size, id }));
                layers.push(None);
            }
        }
        for (_, job) in jobs.iter().skip(CONCURRENT_DOWNLOADS) {
            progress(event(&job.id, LayerStatus::Waiting));
        }
        let downloaded = self.download_all(&client, jobs, progress)?;
        for (slot, file) in downloaded {
            layers[slot] = Some(file);
        }
        let layers = layers
            .into_iter()
            .zip(manifest.layers())
            .map(|(file, descriptor)| {
                let blob = file.ok_or_else(|| {
                    ImageError::Unsupported("a layer was neither stored nor downloaded".into())
                })?;
                Ok(ImportedLayer {
                    blob,
                    media_type: descriptor.media_type().to_string(),
                })
            })
            .collect::<Result<Vec<_>, ImageError>>()?;

        let repo_digest =
            Reference::parse(&format!("{}@{top_digest}", parsed.full_repository()))?.to_string();
        let names = if parsed.digest().is_none() {
            vec![parsed.clone()]
        } else {
            Vec::new()
        };
        let id = config_digest.to_string();
        let already = self.resolve(&what).ok().is_some_and(|img| img.id == id);
        let imported = ImportedImage {
            names,
            manifest: manifest_bytes,
            config,
            config_digest,
            layers,
            repo_digest: Some(repo_digest),
            parent: None,
            unpacked_top: None,
        };
        self.commit_images(std::slice::from_ref(&imported), &mut |e| match e {
            LayerEvent::Unpacking(d) if !existing.contains(d) => {
                if let Some(id) = ids.get(d) {
                    progress(event(id, LayerStatus::Extracting));
                }
            }
            LayerEvent::Unpacked(d) if !existing.contains(d) => {
                if let Some(id) = ids.get(d) {
                    progress(event(id, LayerStatus::PullComplete));
                }
            }
            _ => {}
        })?;
        let mut blobs: Vec<Digest> = imported
            .layers
            .iter()
            .map(|l| l.blob.digest.clone())
            .collect();
        blobs.push(imported.config_digest.clone());
        self.record_blob_sources(&parsed.full_repository(), &blobs);
        let image = self.resolve(&id)?;
        Ok(PulledImage {
            image,
            reference: what,
            digest: top_digest.to_string(),
            updated: !already,
        })
    }

    /// Downloads `jobs` (slot, blob), [`CONCURRENT_DOWNLOADS`] at a time,
    /// reporting progress on this thread. The first failure cancels the rest.
    fn download_all(
        &self,
        client: &RegistryClient,
        jobs: Vec<(usize, Job)>,
        progress: &dyn Fn(PullProgress),
    ) -> Result<Vec<(usize, StagedFile)>, ImageError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let dir = self.tmp.join(DOWNLOADS_DIR);
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        run_bounded(
            jobs,
            CONCURRENT_DOWNLOADS,
            |(slot, job), cancel, tx| Ok((slot, download_one(client, &dir, &job, cancel, tx)?)),
            progress,
        )
    }
}

/// A client for `parsed`'s repository as `opts` say: their credentials (or
/// the config file's), a Docker Hub mirror where one is configured.
pub(crate) fn pull_client(
    parsed: &Reference,
    opts: &PullOptions,
) -> Result<RegistryClient, ImageError> {
    let credentials = choose_credentials(
        opts.credentials.as_ref(),
        opts.auth_config_path.as_deref(),
        parsed.domain(),
    )?;
    RegistryClient::for_pull(parsed, credentials, &opts.hosts)
}

/// Downloads one blob into `dir/<hex>.partial` (resuming it), or into a
/// fresh file when another pull is writing that one.
fn download_one(
    client: &RegistryClient,
    dir: &Path,
    job: &Job,
    cancel: &AtomicBool,
    tx: &mpsc::Sender<PullProgress>,
) -> Result<StagedFile, ImageError> {
    let (mut file, path) = open_partial(dir, &job.digest)?;
    let send = |status, current| {
        let _ = tx.send(PullProgress {
            id: job.id.clone(),
            status,
            current,
            total: Some(job.size),
        });
    };
    client.download_blob(&job.digest, job.size, &mut file, cancel, &mut |done| {
        send(LayerStatus::Downloading, Some(done));
    })?;
    send(LayerStatus::VerifyingChecksum, None);
    send(LayerStatus::DownloadComplete, None);
    Ok(StagedFile {
        path,
        digest: job.digest.clone(),
        size: job.size,
    })
}

/// Opens (creating) `<hex>.partial` locked for us; a unique file if it is busy.
fn open_partial(dir: &Path, digest: &Digest) -> Result<(File, PathBuf), ImageError> {
    let path = dir.join(format!("{}.partial", digest.hex()));
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
        return Ok((file, path));
    }
    let (file, temp) = tempfile::Builder::new()
        .prefix(&format!("{}-", digest.hex()))
        .tempfile_in(dir)
        .ctx(|| format!("creating a download file in {}", dir.display()))?
        .into_parts();
    let path = temp
        .keep()
        .map_err(|e| ImageError::io("keeping a download file", e.error))?;
    Ok((file, path))
}

fn short(digest: &Digest) -> String {
    digest.hex()[..12].to_owned()
}

fn event(id: &str, status: LayerStatus) -> PullProgress {
    PullProgress {
        id: id.to_owned(),
        status,
        current: None,
        total: None,
    }
}
