//! The engine's errors. Each carries the message a client sees; the API layer alone
//! decides how a kind is reported (HTTP status, docker's error JSON).

use crate::backend::{BackendError, Unavailable};
use crate::state::StoreError;

/// Why an engine operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No such container, exec, image, volume or network.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the object's state or another object (a name in use).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed or names something unusable.
    #[error("{0}")]
    BadRequest(String),
    /// The container (or exec) is not running.
    #[error("{0}")]
    NotRunning(String),
    /// The operation is refused as such (an endpoint that already exists).
    #[error("{0}")]
    Forbidden(String),
    /// The daemon failed.
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    /// [`EngineError::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        EngineError::NotFound(message.into())
    }
    /// [`EngineError::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        EngineError::Conflict(message.into())
    }
    /// [`EngineError::BadRequest`].
    pub fn bad_request(message: impl Into<String>) -> Self {
        EngineError::BadRequest(message.into())
    }
    /// [`EngineError::NotRunning`].
    pub fn not_running(message: impl Into<String>) -> Self {
        EngineError::NotRunning(message.into())
    }
    /// [`EngineError::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        EngineError::Internal(message.into())
    }
    /// `No such container: KEY`.
    pub fn no_such_container(key: &str) -> Self {
        EngineError::NotFound(format!("No such container: {key}"))
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(k) => EngineError::no_such_container(&k),
            StoreError::Ambiguous(_) => EngineError::BadRequest(e.to_string()),
            StoreError::NameInUse { .. } => EngineError::Conflict(e.to_string()),
            StoreError::Io { .. } | StoreError::Record { .. } => {
                EngineError::Internal(e.to_string())
            }
        }
    }
}

impl From<BackendError> for EngineError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NotFound(m)
            | BackendError::PermissionDenied(m)
            | BackendError::BadRequest(m) => EngineError::BadRequest(m),
            BackendError::Gone(m) => EngineError::Conflict(m),
            BackendError::Failed(m) => EngineError::Internal(m),
        }
    }
}

impl From<Unavailable> for EngineError {
    fn from(e: Unavailable) -> Self {
        EngineError::BadRequest(e.to_string())
    }
}

impl From<vmrun_images::ImageError> for EngineError {
    fn from(e: vmrun_images::ImageError) -> Self {
        use vmrun_images::ImageError as E;
        match &e {
            E::NotFound(_) => EngineError::NotFound(e.to_string()),
            E::Conflict(_) => EngineError::Conflict(e.to_string()),
            E::Io { .. } | E::Corrupt { .. } => EngineError::Internal(e.to_string()),
            _ => EngineError::BadRequest(e.to_string()),
        }
    }
}

/// Result of an engine operation.
pub type EngineResult<T> = Result<T, EngineError>;
