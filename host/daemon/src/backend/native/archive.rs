//! The native backend's container-filesystem operations: `docker cp` both ways,
//! `docker export` and `docker diff`.
//!
//! A running container's files are reached through `/proc/<pid>/root` (its root with its
//! volumes and binds, as `docker cp` sees them); a stopped one's overlay, volumes and
//! binds are mounted for the operation and unmounted after ([`stopped`]; the engine
//! keeps the container from starting meanwhile). Export reads the overlay alone: the host's view
//! of the rootfs mount while it runs, without descending into other file systems. The
//! path rules and the tars are [`vmrun_containerfs`]'s, shared with the guest agent.

use std::path::Path;

use tokio::sync::oneshot;
use vmrun_containerfs::Root;

use super::files::ContainerPaths;
use super::stopped::{self, Mounted};
use crate::backend::stream_io::{stream_of, BlockingReader, ChannelWriter};
use crate::backend::{BackendError, ByteStream, Change, ContainerSpec, ExtractOptions, PathStat};

fn failed(what: &str) -> impl Fn(std::io::Error) -> BackendError + '_ {
    move |e| BackendError::Failed(format!("{what}: {e}"))
}

/// The container's root as `docker cp` sees it.
fn cp_root(
    paths: &ContainerPaths,
    c: &ContainerSpec,
) -> Result<(Root, Option<Mounted>), BackendError> {
    if c.pid > 0 {
        if let Ok(root) = Root::open(Path::new(&format!("/proc/{}/root", c.pid))) {
            return Ok((root, None));
        }
    }
    let (root, mounted) = stopped::mount(paths, c, true)?;
    Ok((root, Some(mounted)))
}

/// The container's overlay alone, for export.
fn overlay_root(
    paths: &ContainerPaths,
    c: &ContainerSpec,
) -> Result<(Root, Option<Mounted>), BackendError> {
    let dev = |p: &Path| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::dev(&m));
    let mounted_here = matches!((dev(&paths.rootfs), dev(&paths.dir)), (Ok(a), Ok(b)) if a != b);
    if c.pid > 0 && !mounted_here {
        return cp_root(paths, c);
    }
    if mounted_here {
        let root = Root::open(&paths.rootfs).map_err(failed("opening the container's files"))?;
        return Ok((root, None));
    }
    let (root, mounted) = stopped::mount(paths, c, false)?;
    Ok((root, Some(mounted)))
}

/// A [`vmrun_containerfs::Error`] of container `c` as the backend reports it.
pub fn fs_error(c: &ContainerSpec, e: vmrun_containerfs::Error) -> BackendError {
    match e {
        vmrun_containerfs::Error::NotFound(path) => BackendError::NotFound(format!(
            "Could not find the file {path} in container {}",
            c.name
        )),
        vmrun_containerfs::Error::BadRequest(m) => BackendError::BadRequest(m),
        vmrun_containerfs::Error::Failed(m) => BackendError::Failed(m),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Failed(format!("file task failed: {e}")))?
}

/// `HEAD /containers/{id}/archive`.
pub async fn path_stat(
    paths: ContainerPaths,
    c: ContainerSpec,
    path: String,
) -> Result<PathStat, BackendError> {
    blocking(move || {
        let (root, _mounted) = cp_root(&paths, &c)?;
        let (_, stat) = vmrun_containerfs::stat(&root, &path).map_err(|e| fs_error(&c, e))?;
        Ok(stat)
    })
    .await
}

/// `GET /containers/{id}/archive`: the stat and a tar of the path (a directory with its
/// tree, named by the path's base name).
pub async fn archive(
    paths: ContainerPaths,
    c: ContainerSpec,
    path: String,
) -> Result<(PathStat, ByteStream), BackendError> {
    let (stat_tx, stat_rx) = oneshot::channel();
    let (writer, rx) = ChannelWriter::pair();
    tokio::task::spawn_blocking(move || {
        let opened = cp_root(&paths, &c).and_then(|(root, mounted)| {
            let (located, stat) =
                vmrun_containerfs::stat(&root, &path).map_err(|e| fs_error(&c, e))?;
            Ok((root, mounted, located, stat))
        });
        let (root, _mounted, located, stat) = match opened {
            Ok(o) => o,
            Err(e) => {
                let _ = stat_tx.send(Err(e));
                return;
            }
        };
        if stat_tx.send(Ok(stat.clone())).is_err() {
            return;
        }
        let errors = writer.errors();
        if let Err(e) = vmrun_containerfs::write_archive(&root, &located, &stat, writer) {
            tracing::warn!("archiving {path}: {e}");
            // The response ends in an error, not in a tar that looks complete.
            errors.fail(e);
        }
    });
    let stat = stat_rx
        .await
        .map_err(|_| BackendError::Failed("the archive task ended early".into()))??;
    Ok((stat, stream_of(rx)))
}

/// `GET /containers/{id}/export`: a tar of the container's root file system.
pub async fn export(paths: ContainerPaths, c: ContainerSpec) -> Result<ByteStream, BackendError> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (writer, rx) = ChannelWriter::pair();
    tokio::task::spawn_blocking(move || {
        let (root, _mounted) = match overlay_root(&paths, &c) {
            Ok(o) => o,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        if ready_tx.send(Ok(())).is_err() {
            return;
        }
        let errors = writer.errors();
        if let Err(e) = vmrun_containerfs::write_export(&root, writer) {
            tracing::warn!("exporting {}: {e}", c.short_id());
            errors.fail(e);
        }
    });
    ready_rx
        .await
        .map_err(|_| BackendError::Failed("the export task ended early".into()))??;
    Ok(stream_of(rx))
}

/// `PUT /containers/{id}/archive`: extracts `tar` into directory `path`.
pub async fn extract_into(
    paths: ContainerPaths,
    c: ContainerSpec,
    path: String,
    opts: ExtractOptions,
    tar: ByteStream,
) -> Result<(), BackendError> {
    if c.readonly_rootfs {
        return Err(BackendError::PermissionDenied(
            "container rootfs is marked read-only".into(),
        ));
    }
    let input = BlockingReader::new(tar);
    blocking(move || {
        let (root, _mounted) = cp_root(&paths, &c)?;
        let user = c.process.user.as_deref();
        vmrun_containerfs::extract_into(&root, &path, opts, user, input)
            .map_err(|e| fs_error(&c, e))
    })
    .await
}

/// `GET /containers/{id}/changes`.
pub async fn changes(paths: ContainerPaths, c: ContainerSpec) -> Result<Vec<Change>, BackendError> {
    blocking(move || {
        crate::backend::changes::changes(&paths.diff, &c.layers)
            .map_err(|e| BackendError::Failed(format!("reading the container's changes: {e}")))
    })
    .await
}
