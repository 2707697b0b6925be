//! [`ImageStore`]: loading, naming, listing and removing images.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::image::ImageConfiguration;

use crate::archive::{docker_archive, oci_layout, ImportedImage, StagedArchive};
use crate::blobs::BlobStore;
use crate::digest::{chain_ids, Digest};
use crate::error::{ImageError, IoContext};
use crate::image::{Image, LoadedImage};
use crate::index::{ImageRecord, Index, LayerRecord};
use crate::layers::{LayerStore, PreparedLayer};
use crate::lookup::find_image;
use crate::reference::Reference;
use crate::workers::run_bounded;

const INDEX_FILE: &str = "images.json";
const LOCK_FILE: &str = "lock";
const TMP_DIR: &str = "tmp";

/// What [`ImageStore::commit_images`] reports about a layer, by blob digest.
pub(crate) enum LayerEvent<'a> {
    /// Unpacking (or checking the stored copy) starts.
    Unpacking(&'a Digest),
    /// The layer is staged.
    Unpacked(&'a Digest),
}

/// The image store. Internally locked: share it behind an `Arc`.
///
/// Loads and removals are serialized with each other; lookups and listings
/// only wait for the brief moment an index is swapped in.
pub struct ImageStore {
    root: PathBuf,
    pub(crate) tmp: PathBuf,
    pub(crate) blobs: BlobStore,
    pub(crate) layers: LayerStore,
    index: RwLock<Index>,
    /// Serializes everything that writes the index or deletes layers.
    writer: Mutex<()>,
    /// Held (flock) while the store is open, so two daemons cannot share a root.
    _lock: OwnedFd,
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`, removes leftovers of
    /// interrupted loads and removals, and takes an exclusive lock on it.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        fs::create_dir_all(root).ctx(|| format!("creating {}", root.display()))?;
        let lock_path = root.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .ctx(|| format!("opening {}", lock_path.display()))?;
        let lock = OwnedFd::from(lock);
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |e| {
                ImageError::io(
                    format!(
                        "locking {} (is another daemon using this image store?)",
                        lock_path.display()
                    ),
                    e.into(),
                )
            },
        )?;
        let tmp = root.join(TMP_DIR);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).ctx(|| format!("clearing {}", tmp.display()))?;
        }
        fs::create_dir_all(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
        let index = Index::read(&root.join(INDEX_FILE))?;
        let store = ImageStore {
            root: root.to_owned(),
            blobs: BlobStore::new(root, &tmp)?,
            layers: LayerStore::new(root, &tmp)?,
            tmp,
            index: RwLock::new(index),
            writer: Mutex::new(()),
            _lock: lock,
        };
        store.collect_garbage()?;
        Ok(store)
    }

    /// Loads every image of an OCI image layout or docker-archive tar.
    ///
    /// All blobs are verified against their digests and every layer against
    /// its diff id; layers already in the store are shared, not unpacked again.
    /// Nothing becomes visible until everything is in place: a failed load
    /// leaves the store as it was.
    pub fn load(&self, reader: impl Read) -> Result<Vec<LoadedImage>, ImageError> {
        let staged = StagedArchive::extract(reader, &self.tmp)?;
        let imported = if staged.has("index.json") {
            oci_layout::parse(&staged)?
        } else if staged.has("manifest.json") {
            docker_archive::parse(&staged)?
        } else {
            return Err(ImageError::InvalidArchive(
                "neither an OCI image layout (no index.json) nor a docker-archive (no manifest.json)".into(),
            ));
        };
        let loaded = self.commit_images(&imported, &mut |_| {})?;
        drop(staged);
        Ok(loaded)
    }

    /// Verifies, unpacks and commits imported images (shared by `load` and
    /// `pull`): layers are prepared in staging first, then blobs and layers
    /// are renamed into place and the index is replaced last. `on_layer`
    /// hears about each layer (by blob digest) as it is unpacked.
    pub(crate) fn commit_images(
        &self,
        imported: &[ImportedImage],
        on_layer: &mut dyn FnMut(LayerEvent<'_>),
    ) -> Result<Vec<LoadedImage>, ImageError> {
        let _writer = self.lock_writer();
        let mut prepared: HashMap<Digest, PreparedLayer> = HashMap::new();
        let mut records = Vec::with_capacity(imported.len());
        for image in imported {
            records.push(self.prepare_image(image, &mut prepared, on_layer)?);
        }
        // Commit: blobs and layers first, then the index that makes them visible.
        for image in imported {
            self.blobs.put_bytes(&image.config_digest, &image.config)?;
            self.blobs
                .put_bytes(&Digest::of_bytes(&image.manifest), &image.manifest)?;
            for layer in &image.layers {
                self.blobs.put_staged(&layer.blob)?;
            }
        }
        for (chain_id, layer) in prepared {
            self.layers.commit(&chain_id, layer)?;
        }
        let mut index = self.read_index().clone();
        let mut loaded = Vec::new();
        for (image, record) in imported.iter().zip(records) {
            let id = image_id(&image.config_digest);
            let mut record = record;
            if let Some(old) = index.images.get(&id) {
                record.repo_digests = old.repo_digests.clone();
                record.parent = old.parent.clone();
            }
            if image.parent.is_some() {
                record.parent = image.parent.clone();
            }
            if let Some(d) = &image.repo_digest {
                if !record.repo_digests.contains(d) {
                    record.repo_digests.push(d.clone());
                }
            }
            index.images.insert(id.clone(), record);
            for name in &image.names {
                let reference = name.to_string();
                if let Some(old) = index.tags.insert(reference.clone(), id.clone()) {
                    if old != id {
                        tracing::info!(%reference, old_id = %old, "moved the tag to the newly loaded image");
                    }
                }
                loaded.push(LoadedImage {
                    reference,
                    id: id.clone(),
                });
            }
            if image.names.is_empty() {
                loaded.push(LoadedImage {
                    reference: id.clone(),
                    id,
                });
            }
        }
        self.commit_index(index)?;
        Ok(loaded)
    }

    /// Finds an image by `busybox`, `busybox:latest`, `docker.io/library/busybox:latest`,
    /// `repo@sha256:<manifest>`, its full id `sha256:…`, or an id prefix of at least 4 hex characters.
    pub fn resolve(&self, reference: &str) -> Result<Image, ImageError> {
        let index = self.read_index();
        let id = find_image(&index, reference)?;
        self.describe(&index, &id)
    }

    /// The image's config document as stored (every field, docker's extensions such as
    /// `Healthcheck`, `OnBuild` and `Shell` included).
    pub fn raw_config(&self, reference: &str) -> Result<serde_json::Value, ImageError> {
        let config = {
            let index = self.read_index();
            let id = find_image(&index, reference)?;
            index
                .images
                .get(&id)
                .map(|r| r.config.clone())
                .ok_or_else(|| ImageError::NotFound(reference.to_owned()))?
        };
        serde_json::from_slice(&self.blobs.read(&config)?)
            .map_err(|e| ImageError::json("reading an image config", e))
    }

    /// Every image, most recently loaded first.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let index = self.read_index();
        let mut ids: Vec<(&String, &ImageRecord)> = index.images.iter().collect();
        ids.sort_by(|a, b| b.1.loaded_at.cmp(&a.1.loaded_at).then(a.0.cmp(b.0)));
        ids.into_iter()
            .map(|(id, _)| self.describe(&index, id))
            .collect()
    }

    /// Points the tag `target` (normalized; `:latest` by default) at the image `source` resolves to.
    pub fn tag(&self, source: &str, target: &str) -> Result<(), ImageError> {
        let target_ref = Reference::parse(target)?;
        if target_ref.digest().is_some() {
            return Err(ImageError::InvalidReference {
                reference: target.to_owned(),
                reason: "a tag cannot be a digest reference".into(),
            });
        }
        let _writer = self.lock_writer();
        let mut index = self.read_index().clone();
        let id = find_image(&index, source)?;
        index
            .tags
            .insert(target_ref.with_default_tag().to_string(), id);
        self.commit_index(index)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn prepare_image(
        &self,
        image: &ImportedImage,
        prepared: &mut HashMap<Digest, PreparedLayer>,
        on_layer: &mut dyn FnMut(LayerEvent<'_>),
    ) -> Result<ImageRecord, ImageError> {
        let label = image
            .names
            .first()
            .map(ToString::to_string)
            .unwrap_or_else(|| image_id(&image.config_digest));
        let config = parse_config(&image.config, &label)?;
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse::<Digest>())
            .collect::<Result<Vec<_>, _>>()?;
        if diff_ids.len() != image.layers.len() {
            return Err(ImageError::InvalidArchive(format!(
                "image {label}: its config lists {} layers (rootfs.diff_ids) but its manifest {}",
                diff_ids.len(),
                image.layers.len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        // Unpack the layers not prepared yet, a few at once: each goes to its own
        // staging directory (whiteouts stay in overlayfs form), so order does not matter.
        let mut jobs: Vec<usize> = Vec::new();
        for (i, chain_id) in chains.iter().enumerate() {
            if !prepared.contains_key(chain_id) && !jobs.iter().any(|&j| chains[j] == *chain_id) {
                jobs.push(i);
            }
        }
        let unpacked = run_bounded(
            jobs,
            unpack_workers(),
            |i, _cancel, tx| {
                let blob = &image.layers[i].blob;
                let _ = tx.send(LayerEvent::Unpacking(&blob.digest));
                let parent = i.checked_sub(1).map(|p| &chains[p]);
                let adopt = image
                    .unpacked_top
                    .as_deref()
                    .filter(|_| i + 1 == image.layers.len());
                let layer = match adopt {
                    Some(dir) => {
                        self.layers
                            .adopt(&label, &chains[i], parent, &diff_ids[i], blob, dir)?
                    }
                    None => self
                        .layers
                        .prepare(&label, &chains[i], parent, &diff_ids[i], blob)?,
                };
                let _ = tx.send(LayerEvent::Unpacked(&blob.digest));
                Ok::<_, ImageError>((i, layer))
            },
            on_layer,
        )?;
        for (i, layer) in unpacked {
            prepared.insert(chains[i].clone(), layer);
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (i, layer) in image.layers.iter().enumerate() {
            let size = prepared
                .get(&chains[i])
                .map(PreparedLayer::size)
                .ok_or_else(|| {
                    ImageError::InvalidArchive(format!("image {label}: layer {i} was not unpacked"))
                })?;
            layers.push(LayerRecord {
                chain_id: chains[i].clone(),
                diff_id: diff_ids[i].clone(),
                blob: layer.blob.digest.clone(),
                media_type: layer.media_type.clone(),
                blob_size: layer.blob.size,
                size,
            });
        }
        Ok(ImageRecord {
            config: image.config_digest.clone(),
            manifest: Digest::of_bytes(&image.manifest),
            layers,
            loaded_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            repo_digests: Vec::new(),
            parent: None,
        })
    }

    fn describe(&self, index: &Index, id: &str) -> Result<Image, ImageError> {
        let record = index
            .images
            .get(id)
            .ok_or_else(|| ImageError::NotFound(id.to_owned()))?;
        let bytes = self.blobs.read(&record.config)?;
        let config = parse_config(&bytes, id)?;
        Ok(Image {
            id: id.to_owned(),
            repo_tags: index.tags_of(id),
            repo_digests: record.repo_digests.clone(),
            created: config.created().clone(),
            size: record.layers.iter().map(|l| l.size).sum(),
            layer_dirs: record
                .layers
                .iter()
                .map(|l| self.layers.diff_dir(&l.chain_id))
                .collect(),
            layer_sizes: record.layers.iter().map(|l| l.size).collect(),
            architecture: config.architecture().to_string(),
            os: config.os().to_string(),
            parent: record.parent.clone(),
            config,
        })
    }

    pub(crate) fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half-written:
        // it is only ever replaced whole.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `index` to disk and makes it the current one.
    pub(crate) fn commit_index(&self, index: Index) -> Result<(), ImageError> {
        index.write(&self.root.join(INDEX_FILE))?;
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        Ok(())
    }

    /// Removes layers and blobs that no image references (left by an interrupted load or removal).
    fn collect_garbage(&self) -> Result<(), ImageError> {
        let index = self.read_index();
        let layers = index.referenced_layers();
        for chain_id in self.layers.list()? {
            if !layers.contains(&chain_id) {
                tracing::info!(%chain_id, "removing an unreferenced layer");
                self.layers.remove(&chain_id)?;
            }
        }
        let blobs = index.referenced_blobs();
        for digest in self.blobs.list()? {
            if !blobs.contains(&digest) {
                tracing::info!(%digest, "removing an unreferenced blob");
                self.blobs.remove(&digest)?;
            }
        }
        Ok(())
    }
}

/// Parses an image config. `history` is optional in the OCI spec but required
/// by `oci-spec` 0.7, so a missing one is read as empty.
fn parse_config(bytes: &[u8], image: &str) -> Result<ImageConfiguration, ImageError> {
    let context = || format!("parsing the config of image {image}");
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ImageError::json(context(), e))?;
    if let Some(object) = value.as_object_mut() {
        object
            .entry("history")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_value(value).map_err(|e| ImageError::json(context(), e))
}

fn image_id(config: &Digest) -> String {
    config.to_string()
}

pub(crate) fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// Layers unpacked at once: one per CPU, at most 4 (gzip is CPU-bound; more
/// only adds seeks).
fn unpack_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}
