//! The native backend's container-filesystem operations: `docker cp` both ways,
//! `docker export` and `docker diff`.
//!
//! A running container's files are reached through `/proc/<pid>/root` (its root with its
//! volumes and binds, as `docker cp` sees them); a stopped one's overlay, volumes and
//! binds are mounted for the operation and unmounted after ([`stopped`]; the engine
//! keeps the container from starting meanwhile). Export reads the overlay alone: the host's view
//! of the rootfs mount while it runs, without descending into other file systems.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use rustix::fs::{FileType, OFlags};
use tokio::sync::{mpsc, oneshot};

use super::files::ContainerPaths;
use super::inroot::Root;
use super::pack::{ChannelWriter, Names, Packer};
use super::stopped::{self, Mounted};
use super::unpack::{extract, Target};
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

fn not_found(path: &str, c: &ContainerSpec) -> BackendError {
    BackendError::NotFound(format!(
        "Could not find the file {path} in container {}",
        c.name
    ))
}

fn stat_error(path: &str, c: &ContainerSpec, e: std::io::Error) -> BackendError {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => not_found(path, c),
        _ => BackendError::Failed(format!("stat {path}: {e}")),
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
        let (_, stat) = root
            .path_stat(path.as_bytes())
            .map_err(|e| stat_error(&path, &c, e))?;
        Ok(stat)
    })
    .await
}

fn stream_of(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> ByteStream {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// `GET /containers/{id}/archive`: the stat and a tar of the path (a directory with its
/// tree, named by the path's base name).
pub async fn archive(
    paths: ContainerPaths,
    c: ContainerSpec,
    path: String,
) -> Result<(PathStat, ByteStream), BackendError> {
    let (stat_tx, stat_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let opened = cp_root(&paths, &c).and_then(|(root, mounted)| {
            let (located, stat) = root
                .path_stat(path.as_bytes())
                .map_err(|e| stat_error(&path, &c, e))?;
            Ok((root, mounted, located, stat))
        });
        let (root, _mounted, located, stat) = match opened {
            Ok(o) => o,
            Err(e) => {
                let _ = stat_tx.send(Err(e));
                return;
            }
        };
        let mut name = stat.name.clone();
        if name == "/" {
            name = ".".into();
        }
        if stat_tx.send(Ok(stat)).is_err() {
            return;
        }
        let errors = tx.clone();
        let names = owner_names(&root);
        let mut packer = Packer::new(ChannelWriter::new(tx), names, None);
        let written = packer
            .add(&located.parent, &located.base, name.as_bytes())
            .and_then(|()| packer.finish())
            .and_then(|mut w| std::io::Write::flush(&mut w));
        if let Err(e) = written {
            tracing::warn!("archiving {path}: {e}");
            // The response ends in an error, not in a tar that looks complete.
            let _ = errors.blocking_send(Err(e));
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
    let (tx, rx) = mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let opened = overlay_root(&paths, &c).and_then(|(root, mounted)| {
            let dir = root
                .open_dir(b"/")
                .map_err(failed("opening the container's files"))?;
            let dev = rustix::fs::fstat(&dir).map_err(|e| BackendError::Failed(e.to_string()))?;
            Ok((root, mounted, dir, dev.st_dev))
        });
        let (root, _mounted, dir, dev) = match opened {
            Ok(o) => o,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        if ready_tx.send(Ok(())).is_err() {
            return;
        }
        let errors = tx.clone();
        let names = owner_names(&root);
        let mut packer = Packer::new(ChannelWriter::new(tx), names, Some(dev));
        let written = packer
            .tree(&dir, b"")
            .and_then(|()| packer.finish())
            .and_then(|mut w| std::io::Write::flush(&mut w));
        if let Err(e) = written {
            tracing::warn!("exporting {}: {e}", c.short_id());
            let _ = errors.blocking_send(Err(e));
        }
    });
    ready_rx
        .await
        .map_err(|_| BackendError::Failed("the export task ended early".into()))??;
    Ok(stream_of(rx))
}

/// Reads an async byte stream from a blocking thread.
struct BlockingReader {
    stream: ByteStream,
    handle: tokio::runtime::Handle,
    chunk: Bytes,
}

impl Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// A file of the container as text; empty when it cannot be read.
fn read_text(root: &Root, path: &[u8]) -> String {
    let Ok(fd) = root.open_at(path, OFlags::RDONLY) else {
        return String::new();
    };
    let mut text = String::new();
    let _ = std::fs::File::from(fd).read_to_string(&mut text);
    text
}

/// The container's user and group names.
fn owner_names(root: &Root) -> Names {
    Names::new(
        &read_text(root, b"/etc/passwd"),
        &read_text(root, b"/etc/group"),
    )
}

/// The owner `copyUIDGID` gives files: the container's user, from its `/etc/passwd`
/// and `/etc/group` read inside its root.
fn container_owner(root: &Root, user: &str) -> Result<(u32, u32), BackendError> {
    let passwd = vmrun_runtime::user::parse_passwd(&read_text(root, b"/etc/passwd"));
    let groups = vmrun_runtime::user::parse_group(&read_text(root, b"/etc/group"));
    let u = vmrun_runtime::user::resolve(&passwd, &groups, user)
        .map_err(|e| BackendError::BadRequest(e.to_string()))?;
    Ok((u.uid, u.gid))
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
    let handle = tokio::runtime::Handle::current();
    blocking(move || {
        let (root, _mounted) = cp_root(&paths, &c)?;
        let dest = root
            .follow_in_scope(path.as_bytes())
            .map_err(|e| stat_error(&path, &c, e))?;
        let dir = root
            .open_at(&dest, OFlags::PATH)
            .map_err(|e| stat_error(&path, &c, e))?;
        let st = rustix::fs::fstat(dir.as_fd()).map_err(|e| stat_error(&path, &c, e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(BackendError::BadRequest(
                "extraction point is not a directory".into(),
            ));
        }
        // As dockerd: a container without a user keeps the archive's owners.
        let user = c.process.user.as_deref().filter(|u| !u.is_empty());
        let owner = if let (true, Some(user)) = (opts.copy_uid_gid, user) {
            Some(container_owner(&root, user)?)
        } else {
            None
        };
        let target = Target {
            root: &root,
            dest,
            opts,
            owner,
        };
        let input = BlockingReader {
            stream: tar,
            handle,
            chunk: Bytes::new(),
        };
        extract(&target, input)
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
