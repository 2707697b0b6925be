//! A container's files: `docker cp` both ways, `docker export` and `docker diff`.
//!
//! A stopped container's files are only reachable while the backend has them mounted,
//! so the container's operation lock is held for the whole operation (a stream's lock
//! goes with the stream) and the container cannot start meanwhile; a running one's are
//! reached through its processes and need no lock.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::OwnedMutexGuard;

use super::{Engine, EngineError};
use crate::backend::{BackendError, ByteStream, Change, ExtractOptions, PathStat};
use crate::state::{ContainerRecord, Status};

/// A stream that holds the container's lock until it ends.
struct Locked {
    inner: ByteStream,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl Stream for Locked {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// A backend's error, with a missing path as a not-found (HTTP 404).
fn file_error(e: BackendError) -> EngineError {
    match e {
        BackendError::NotFound(m) => EngineError::NotFound(m),
        other => other.into(),
    }
}

/// The path of a `docker cp` request: required, absolute in the container.
fn cp_path(path: &str) -> Result<String, EngineError> {
    if path.is_empty() {
        return Err(EngineError::bad_request(
            "bad parameter: path cannot be empty",
        ));
    }
    if path.contains('\0') {
        return Err(EngineError::bad_request("path must not contain a NUL byte"));
    }
    Ok(if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    })
}

impl Engine {
    /// The container, with its lock while it is not running.
    async fn hold_files(
        &self,
        key: &str,
    ) -> Result<(ContainerRecord, Option<OwnedMutexGuard<()>>), EngineError> {
        let id = self.container(key)?.id;
        let guard = self.lock_container(&id).await;
        let rec = self.container(&id)?;
        if matches!(rec.state.status, Status::Removing | Status::Dead) {
            return Err(EngineError::conflict(format!(
                "container {} is marked for removal",
                rec.short_id()
            )));
        }
        let guard = (!rec.is_running()).then_some(guard);
        Ok((rec, guard))
    }

    /// `HEAD /containers/{id}/archive?path=`.
    pub async fn container_path_stat(
        &self,
        key: &str,
        path: &str,
    ) -> Result<PathStat, EngineError> {
        let path = cp_path(path)?;
        let (rec, _guard) = self.hold_files(key).await?;
        let (backend, spec) = self.backend_of(&rec)?;
        backend.path_stat(&spec, &path).await.map_err(file_error)
    }

    /// `GET /containers/{id}/archive?path=`: the path's stat and a tar of it.
    pub async fn container_archive(
        &self,
        key: &str,
        path: &str,
    ) -> Result<(PathStat, ByteStream), EngineError> {
        let path = cp_path(path)?;
        let (rec, guard) = self.hold_files(key).await?;
        let (backend, spec) = self.backend_of(&rec)?;
        let (stat, inner) = backend.archive(&spec, &path).await.map_err(file_error)?;
        let stream = Locked {
            inner,
            _guard: guard,
        };
        Ok((stat, Box::pin(stream)))
    }

    /// `PUT /containers/{id}/archive?path=`: extracts `tar` into directory `path`.
    pub async fn container_extract(
        &self,
        key: &str,
        path: &str,
        opts: ExtractOptions,
        tar: ByteStream,
    ) -> Result<(), EngineError> {
        let path = cp_path(path)?;
        let (rec, _guard) = self.hold_files(key).await?;
        let (backend, spec) = self.backend_of(&rec)?;
        backend
            .extract(&spec, &path, opts, tar)
            .await
            .map_err(file_error)
    }

    /// `GET /containers/{id}/export`.
    pub async fn container_export(&self, key: &str) -> Result<ByteStream, EngineError> {
        let (rec, guard) = self.hold_files(key).await?;
        let (backend, spec) = self.backend_of(&rec)?;
        let inner = backend.export(&spec).await.map_err(file_error)?;
        self.events.emit(
            "container",
            "export",
            &rec.id,
            &[("name", rec.name.trim_start_matches('/').to_owned())],
        );
        Ok(Box::pin(Locked {
            inner,
            _guard: guard,
        }))
    }

    /// `GET /containers/{id}/changes`.
    pub async fn container_changes(&self, key: &str) -> Result<Vec<Change>, EngineError> {
        let rec = self.container(key)?;
        let (backend, spec) = self.backend_of(&rec)?;
        backend.changes(&spec).await.map_err(file_error)
    }
}
