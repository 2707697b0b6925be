//! The public description of stored images and of what `load`/`remove` did.

use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;

/// An image in the store.
#[derive(Clone, Debug)]
pub struct Image {
    /// `sha256:<config digest>`.
    pub id: String,
    /// Familiar tagged references (`busybox:latest`), sorted.
    pub repo_tags: Vec<String>,
    /// `repo@sha256:<manifest digest>` references (set when pulled from a registry).
    pub repo_digests: Vec<String>,
    /// The config's `created` time (RFC 3339), if any.
    pub created: Option<String>,
    /// Bytes of file content in all layers, unpacked.
    pub size: u64,
    /// The image configuration (Env, Cmd, Entrypoint, WorkingDir, User, ...).
    pub config: ImageConfiguration,
    /// Unpacked layer directories in overlayfs form, bottom-most first.
    pub layer_dirs: Vec<PathBuf>,
    /// Bytes of file content of each layer, unpacked, bottom-most first.
    pub layer_sizes: Vec<u64>,
    /// e.g. `amd64`.
    pub architecture: String,
    /// e.g. `linux`.
    pub os: String,
    /// The image a build step made this one from (intermediate images of builds).
    pub parent: Option<String>,
}

/// One image that `load` stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// The familiar tagged reference (`busybox:latest`), or the id for an untagged image.
    pub reference: String,
    /// `sha256:<config digest>`.
    pub id: String,
}

/// One thing `remove` did, in docker's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemovedItem {
    /// A reference was removed.
    Untagged(String),
    /// An image (`sha256:<id>`) or an unpacked layer (`sha256:<chain id>`) was deleted.
    Deleted(String),
}
