//! Errors as the Docker Engine API reports them: a status code and `{"message": ...}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error an API client sees.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message, shown by the docker CLI as `Error response from daemon: ...`.
    pub message: String,
}

impl ApiError {
    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 404: no such object.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 409: conflicts with the object's state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// 500: the daemon failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// Any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    /// `No such container: NAME`.
    pub fn no_such_container(name: &str) -> Self {
        Self::not_found(format!("No such container: {name}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!("{}", self.message);
        }
        let body = serde_json::json!({ "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

/// The engine's errors at the HTTP edge: the engine says what went wrong, the API how
/// docker reports it.
impl From<crate::engine::EngineError> for ApiError {
    fn from(e: crate::engine::EngineError) -> Self {
        use crate::engine::EngineError as E;
        match e {
            E::NotFound(m) => ApiError::not_found(m),
            E::Conflict(m) | E::NotRunning(m) => ApiError::conflict(m),
            E::BadRequest(m) => ApiError::bad_request(m),
            E::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            E::Internal(m) => ApiError::internal(m),
        }
    }
}

impl From<vmrun_images::ImageError> for ApiError {
    fn from(e: vmrun_images::ImageError) -> Self {
        use vmrun_images::ImageError as E;
        match &e {
            E::NotFound(_) => ApiError::not_found(e.to_string()),
            E::Conflict(_) => ApiError::conflict(e.to_string()),
            E::Io { .. } | E::Corrupt { .. } => ApiError::internal(e.to_string()),
            _ => ApiError::bad_request(e.to_string()),
        }
    }
}

impl From<vmrun_network::NetworkError> for ApiError {
    fn from(e: vmrun_network::NetworkError) -> Self {
        use vmrun_network::NetworkError as E;
        match &e {
            E::NotFound(_) => ApiError::not_found(e.to_string()),
            E::InUse { .. } | E::AlreadyExists(_) | E::Predefined(_) => {
                ApiError::conflict(e.to_string())
            }
            E::InvalidArgument(_) | E::SubnetOverlap { .. } | E::Ambiguous(_) => {
                ApiError::bad_request(e.to_string())
            }
            _ => ApiError::internal(e.to_string()),
        }
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;
