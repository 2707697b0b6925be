//! Typed errors of the image store.

use std::io;
use std::path::PathBuf;

use crate::unpack::UnpackError;

/// Everything that can go wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation on the store failed.
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A reference could not be parsed.
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it is invalid.
        reason: String,
    },
    /// No image matches the reference.
    #[error("No such image: {0}")]
    NotFound(String),
    /// An id prefix matches more than one image.
    #[error("ambiguous image id prefix {0:?}: it matches more than one image")]
    Ambiguous(String),
    /// The operation would break a rule (e.g. removing by id an image tagged in several repositories).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The archive is not a well-formed OCI layout or docker-archive.
    #[error("invalid image archive: {0}")]
    InvalidArchive(String),
    /// Content did not hash to the digest that names it.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified (blob path, layer, ...).
        what: String,
        /// The digest that was promised.
        expected: String,
        /// The digest of the content.
        actual: String,
    },
    /// Content did not have the size its descriptor promised.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was being verified.
        what: String,
        /// The promised size.
        expected: u64,
        /// The actual size.
        actual: u64,
    },
    /// A layer could not be unpacked (unsafe entry, corrupt tar, I/O error).
    #[error("image {image}: layer {layer}: {source}")]
    Layer {
        /// The image being loaded (its reference, or its id when untagged).
        image: String,
        /// The layer (its diff id).
        layer: String,
        /// What went wrong, naming the tar entry where there is one.
        #[source]
        source: UnpackError,
    },
    /// Something this version does not support (media type, digest algorithm, platform).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A JSON document could not be parsed or written.
    #[error("{context}: {source}")]
    Json {
        /// Which document.
        context: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A registry refused the credentials, or demands some and none were given.
    #[error("unauthorized: {registry}: {message}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What the registry said.
        message: String,
    },
    /// Talking to a registry failed (connection, TLS, unexpected status, bad manifest).
    #[error("registry {registry}: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What went wrong.
        message: String,
    },
    /// A `--change` instruction given to `import` is not one it accepts, or is malformed.
    #[error("{0}")]
    InvalidChange(String),
    /// The store's own state on disk is inconsistent.
    #[error("image store is corrupt at {path}: {reason}")]
    Corrupt {
        /// Where.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl ImageError {
    /// Wraps an I/O error with what the store was doing.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a JSON error with the document it concerns.
    pub(crate) fn json(context: impl Into<String>, source: serde_json::Error) -> Self {
        ImageError::Json {
            context: context.into(),
            source,
        }
    }
}

/// Adds context to `io::Result`s.
pub(crate) trait IoContext<T> {
    /// Turns an `io::Error` into [`ImageError::Io`] with the given context.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, ImageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, ImageError> {
        self.map_err(|e| ImageError::io(context(), e))
    }
}
