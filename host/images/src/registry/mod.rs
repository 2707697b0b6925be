//! Pulling from registries (OCI distribution spec).
//!
//! * [`client`]: one repository on one registry; manifests and blobs over
//!   HTTPS (system roots) or plain HTTP for loopback and insecure registries;
//!   anonymous, basic and bearer-token auth.
//! * [`auth`]: docker `config.json` credentials, `WWW-Authenticate` parsing.
//! * [`hosts`]: insecure registries, mirrors, certs dirs; `tls`: `certs.d` material
//!   and TLS failures explained; [`mirrors`]: Docker Hub mirrors.
//! * [`manifest`]: manifest media types and the platform choice.
//! * [`distribution`]: a reference's manifest descriptor and platforms, without pulling.
//! * `upload`: the push side: blob checks, mounts, (chunked) uploads, manifests.
//!
//! [`crate::ImageStore::pull`] drives them.

pub mod auth;
mod catalog;
pub(crate) mod client;
pub mod distribution;
pub(crate) mod download;
pub mod hosts;
pub mod login;
pub mod manifest;
pub mod mirrors;
pub(crate) mod tags;
pub(crate) mod tls;
pub(crate) mod upload;

use std::fmt;
use std::path::PathBuf;

pub use auth::{Challenge, Credentials};
pub use catalog::catalog;
pub use distribution::{resolve_descriptor, RemoteDescriptor, RemotePlatform};
pub use hosts::{InsecureEntry, RegistryHosts, DEFAULT_CERTS_DIRS};
pub use login::{check_login, login_server_domain};
pub use manifest::Platform;
pub use tags::list_tags;

/// How to pull.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// The platform to pick from a multi-platform image (default: linux on the host architecture).
    pub platform: Option<Platform>,
    /// A docker-style `config.json` to read credentials from (`auths.<registry>.auth`).
    pub auth_config_path: Option<PathBuf>,
    /// Credentials given directly (e.g. the Engine API's `X-Registry-Auth`); they win over the file.
    pub credentials: Option<Credentials>,
    /// Insecure registries, mirrors and TLS material.
    pub hosts: RegistryHosts,
}

/// What is happening to one layer, in docker's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerStatus {
    /// Queued for download.
    PullingFsLayer,
    /// The layer's blob is already in the store.
    AlreadyExists,
    /// Waiting for a download slot.
    Waiting,
    /// Bytes arriving (`current`/`total`).
    Downloading,
    /// Checking the digest.
    VerifyingChecksum,
    /// Downloaded and verified.
    DownloadComplete,
    /// Being unpacked.
    Extracting,
    /// Unpacked and committed.
    PullComplete,
}

impl LayerStatus {
    /// The status text docker prints.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerStatus::PullingFsLayer => "Pulling fs layer",
            LayerStatus::AlreadyExists => "Already exists",
            LayerStatus::Waiting => "Waiting",
            LayerStatus::Downloading => "Downloading",
            LayerStatus::VerifyingChecksum => "Verifying Checksum",
            LayerStatus::DownloadComplete => "Download complete",
            LayerStatus::Extracting => "Extracting",
            LayerStatus::PullComplete => "Pull complete",
        }
    }
}

impl fmt::Display for LayerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One progress event of a pull, about one layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullProgress {
    /// The layer: the first 12 hex digits of its blob digest (docker's id).
    pub id: String,
    /// What is happening.
    pub status: LayerStatus,
    /// Bytes done (downloading), if meaningful.
    pub current: Option<u64>,
    /// Bytes in all (the blob size), if meaningful.
    pub total: Option<u64>,
}

/// What a pull produced.
#[derive(Clone, Debug)]
pub struct PulledImage {
    /// The image, as [`crate::ImageStore::resolve`] describes it.
    pub image: crate::Image,
    /// The tagged or digest reference pulled, familiar form (`busybox:latest`).
    pub reference: String,
    /// The digest the reference resolved to on the registry (the index's, for a multi-platform image).
    pub digest: String,
    /// Whether anything new was stored (false: the image was already up to date).
    pub updated: bool,
}
