//! Content-addressed image store: OCI layouts, docker-archives, unpacked layers.
//!
//! The daemon owns one [`ImageStore`] under its data root
//! (`/var/lib/vmrun/images` by default).
//!
//! # API
//! ```text
//! ImageStore::open(root: &Path) -> Result<ImageStore, ImageError>
//! ImageStore::load(&self, reader: impl Read) -> Result<Vec<LoadedImage>, ImageError>
//! ImageStore::import(&self, source: &mut dyn Read, opts: &ImportOptions) -> Result<LoadedImage, ImageError>
//! ImageStore::save(&self, references: &[&str], format: SaveFormat, out: impl Write) -> Result<(), ImageError>
//! ImageStore::pull(&self, reference: &str, opts: &PullOptions, progress: &dyn Fn(PullProgress)) -> Result<PulledImage, ImageError>
//! ImageStore::push(&self, reference: &str, opts: &PushOptions, progress: &dyn Fn(PushProgress)) -> Result<PushedImage, ImageError>
//! ImageStore::resolve(&self, reference: &str) -> Result<Image, ImageError>
//! ImageStore::list(&self) -> Result<Vec<Image>, ImageError>
//! ImageStore::tag(&self, source: &str, target: &str) -> Result<(), ImageError>
//! ImageStore::remove(&self, reference: &str, force: bool, containers: &[ContainerUse]) -> Result<Vec<RemovedItem>, ImageError>
//! ImageStore::prune(&self, opts: &PruneOptions, containers: &[ContainerUse]) -> Result<PruneReport, ImageError>
//! ImageStore::hold(&self, container: &str, image_id: &str) / release(container) / retain_holders(live)
//! ImageStore::disk_usage(&self) -> DiskUsage
//! normalize_reference(r: &str) -> Result<String, ImageError>
//! unpack::unpack_layer(reader, dest: &Path, UnpackOptions) -> Result<UnpackStats, UnpackError>
//! ```
//! `ImageStore` is `Send + Sync` (internally locked); share it behind an `Arc`.
//!
//! * `load` takes an OCI image layout tar (`oci-layout`, `index.json`,
//!   `blobs/sha256/…`; names from the `io.containerd.image.name` annotation or
//!   a full-reference `org.opencontainers.image.ref.name`) or a docker-archive
//!   (`manifest.json` with `Config`/`RepoTags`/`Layers`, as `docker save`
//!   writes). Layers may be plain, gzip or zstd tars (detected by magic).
//!   Every blob is checked against its digest and size, every layer's
//!   uncompressed stream against the config's `rootfs.diff_ids`.
//! * `resolve` accepts `busybox`, `busybox:latest`,
//!   `docker.io/library/busybox:latest`, `repo@sha256:<manifest>`, the full
//!   id `sha256:…`, or an id prefix of at least 4 hex characters;
//!   [`ImageError::NotFound`] otherwise, [`ImageError::Ambiguous`] for a prefix
//!   matching several images.
//! * `remove` follows dockerd's `rmi` rules given the containers: a name
//!   untags, and the last name of an image no container uses deletes it; an id
//!   deletes the image with all its names (conflicts for stopped containers
//!   without `force`, for running ones always). It reports `Untagged(ref)`,
//!   `Deleted(image id)`, `Deleted(layer chain id)` like docker.
//! * `push` sends a tagged image to its registry: stored blobs and manifest
//!   byte for byte (the manifest digest is the one the image was pulled or
//!   loaded with), skipping blobs the repository has ("Layer already exists"),
//!   mounting blobs known to be in another repository of the same registry
//!   ("Mounted from …"), uploading the rest in one request or in
//!   `PushOptions::chunk_size` chunks.
//! * Containers *hold* the layers they run on (`hold` at create, `release` at
//!   removal): a layer is deleted only when no image references it and no
//!   container holds it. `disk_usage` counts each shared layer once.
//!
//! # On disk
//! ```text
//! <root>/lock                         flock'ed while open (one daemon per store)
//! <root>/images.json                  the index: image id → config, manifest, layers; tag → id
//! <root>/blob-sources.json            blob → registry repositories holding it (for cross-repo mounts)
//! <root>/blobs/sha256/<hex>           configs, manifests, layer blobs as distributed
//! <root>/layers/<chain-id hex>/diff   unpacked layer, overlayfs form, shared by every image using it
//! <root>/layers/<chain-id hex>/layer.json
//! <root>/tmp/                         staging; emptied on open
//! ```
//! A load stages everything in `tmp/` (archive files, unpacked layers), then
//! renames blobs and layer directories into place and finally replaces
//! `images.json` (write, fsync, rename): a load that fails at any point leaves
//! the visible store unchanged, and whatever an interrupted load or removal
//! left unreferenced is removed the next time the store is opened. Blobs are
//! kept in their distributed (compressed) form so a later registry push or
//! `save` can reuse them with the same digests.
//!
//! # Safety of layers
//! See [`unpack`]: entries with `..` or absolute paths, hard links leaving the
//! layer, and writes through symlinks that lead outside the layer directory
//! are refused with an error naming the image, the layer and the entry.

mod archive;
mod blob_sources;
mod blobs;
mod changes;
mod commit;
mod compression;
pub mod digest;
mod error;
mod image;
mod import;
mod index;
mod layers;
mod lookup;
mod pull;
mod push;
pub mod reference;
pub mod registry;
mod removal;
mod store;
pub mod unpack;
mod workers;

pub use archive::save::SaveFormat;
pub use commit::{CommitOptions, StepLayer};
pub use compression::Compression;
pub use digest::Digest;
pub use error::ImageError;
pub use image::{Image, LoadedImage, RemovedItem};
pub use import::ImportOptions;
pub use push::{PushOptions, PushProgress, PushStatus, PushedImage, DEFAULT_CHUNK_SIZE};
pub use reference::{normalize_reference, split_registry, Reference};
pub use registry::{LayerStatus, Platform, PullOptions, PullProgress, PulledImage, RegistryHosts};
pub use removal::{ContainerUse, DiskUsage, ImageUsage, PruneOptions, PruneReport};
pub use store::ImageStore;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn image_store_is_send_and_sync() {
        assert_send_sync::<super::ImageStore>();
    }
}
