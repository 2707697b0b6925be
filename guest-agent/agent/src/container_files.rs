//! A container's files for `docker cp` and `docker export` ([`StreamTarget::Archive`],
//! [`StreamTarget::Extract`], [`StreamTarget::Export`]): the same path rules and tars
//! as the daemon's native containers (`vmrun-containerfs`), applied here in the guest.
//!
//! A running container's root is `/proc/<init pid>/root` (its volumes and binds
//! included) for `docker cp`, and its bundle's overlay mount for export; a stopped one's
//! overlay is mounted at a directory of its own under `/run/vmrun/files` for the one
//! stream, with its volumes and binds for `docker cp` ([`vmrun_containerfs::binds`], as
//! the daemon mounts a stopped native container's), and unmounted after.
//!
//! [`StreamTarget::Archive`]: vmrun_agent_protocol::StreamTarget::Archive
//! [`StreamTarget::Extract`]: vmrun_agent_protocol::StreamTarget::Extract
//! [`StreamTarget::Export`]: vmrun_agent_protocol::StreamTarget::Export

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use vmrun_agent_protocol::{AgentError, ErrorKind, RootfsSpec, StoppedMount, DATA_TAR_END};
use vmrun_containerfs::{ExtractOptions, Located, PathStat, Root};

use crate::data_tar::ChannelWriter;
use crate::procs::{Kind, Procs};

/// Where stopped containers' overlays are mounted.
const FILES_DIR: &str = "/run/vmrun/files";

fn err(kind: ErrorKind, message: impl Into<String>) -> AgentError {
    AgentError::new(kind, message)
}

fn fs_error(e: vmrun_containerfs::Error) -> AgentError {
    match e {
        vmrun_containerfs::Error::NotFound(path) => err(ErrorKind::NotFound, path),
        vmrun_containerfs::Error::BadRequest(m) => err(ErrorKind::BadRequest, m),
        vmrun_containerfs::Error::Failed(m) => err(ErrorKind::Internal, m),
    }
}

/// A stopped container's overlay, mounted for one stream; unmounted when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = vmrun_runtime::unmount(&self.0) {
            tracing::warn!("unmounting {}: {e}", self.0.display());
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A container's root for one stream.
pub struct Opened {
    root: Root,
    // Dropped in this order: the binds before the overlay they are on.
    _binds: Option<vmrun_containerfs::binds::Binds>,
    _mounted: Option<Mounted>,
}

fn mount_stopped(rootfs: &RootfsSpec, mounts: &[StoppedMount]) -> Result<Opened, AgentError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let Some(writable) = &rootfs.writable else {
        return Err(err(
            ErrorKind::BadRequest,
            "a stopped container's files need its writable layer",
        ));
    };
    if rootfs.layers.is_empty() || rootfs.layers.iter().any(|l| !l.is_dir()) {
        return Err(err(
            ErrorKind::NotFound,
            "a layer of the stopped container is not mounted",
        ));
    }
    let (upper, work) = (writable.join("upper"), writable.join("work"));
    let target = Path::new(FILES_DIR).join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
    for d in [&upper, &work, &target] {
        std::fs::create_dir_all(d).map_err(|e| {
            err(
                ErrorKind::Internal,
                format!("creating {}: {e}", d.display()),
            )
        })?;
    }
    let lowers: Vec<PathBuf> = rootfs.layers.iter().rev().cloned().collect();
    vmrun_runtime::mount_overlay(&lowers, &upper, &work, &target).map_err(|e| {
        let _ = std::fs::remove_dir(&target);
        err(
            ErrorKind::Internal,
            format!("mounting the container's files: {e}"),
        )
    })?;
    let mounted = Mounted(target);
    let root = Root::open(&mounted.0).map_err(|e| {
        err(
            ErrorKind::Internal,
            format!("opening the container's files: {e}"),
        )
    })?;
    if let Some(m) = mounts.iter().find(|m| !m.source.exists()) {
        return Err(err(
            ErrorKind::NotFound,
            format!(
                "{} (for {}) is not in the guest",
                m.source.display(),
                m.destination
            ),
        ));
    }
    let wanted: Vec<vmrun_containerfs::binds::Bind<'_>> = mounts
        .iter()
        .map(|m| vmrun_containerfs::binds::Bind {
            source: &m.source,
            destination: &m.destination,
            read_only: m.read_only,
        })
        .collect();
    let binds = vmrun_containerfs::binds::mount(&root, &mounted.0, &wanted).map_err(fs_error)?;
    Ok(Opened {
        root,
        _binds: Some(binds),
        _mounted: Some(mounted),
    })
}

/// Container `id`'s root: with `stopped`, that overlay mounted for now with
/// `stopped_mounts` over it; else the running container's, as `docker cp` sees it
/// (`whole`: volumes and binds included) or its overlay alone.
pub fn open(
    procs: &Procs,
    id: &str,
    stopped: Option<&RootfsSpec>,
    stopped_mounts: &[StoppedMount],
    whole: bool,
) -> Result<Opened, AgentError> {
    if let Some(rootfs) = stopped {
        return mount_stopped(rootfs, stopped_mounts);
    }
    let dir = if whole {
        PathBuf::from(format!("/proc/{}/root", procs.container_pid(id)?))
    } else {
        match &procs.container(id)?.kind {
            Kind::Container { rootfs, .. } => rootfs.clone(),
            Kind::Exec { .. } => return Err(err(ErrorKind::NotFound, "not a container")),
        }
    };
    let root = Root::open(&dir).map_err(|e| {
        err(
            ErrorKind::Internal,
            format!("opening {}: {e}", dir.display()),
        )
    })?;
    Ok(Opened {
        root,
        _binds: None,
        _mounted: None,
    })
}

/// Runs `f` on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AgentError> + Send + 'static,
) -> Result<T, AgentError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err(ErrorKind::Internal, format!("file task failed: {e}")))?
}

/// A path found for [`send_archive`].
pub struct Found {
    opened: Opened,
    located: Located,
    stat: PathStat,
}

/// Finds `path` in `opened`.
pub fn find(opened: Opened, path: &str) -> Result<Found, AgentError> {
    let (located, stat) = vmrun_containerfs::stat(&opened.root, path).map_err(fs_error)?;
    Ok(Found {
        opened,
        located,
        stat,
    })
}

/// Sends the stat line and (unless `stat_only`) the tar and [`DATA_TAR_END`]; an error
/// ends the stream early, so the host sees it incomplete.
pub async fn send_archive<S>(host: &mut S, found: Found, stat_only: bool)
where
    S: AsyncWrite + Unpin,
{
    let mut line = serde_json::to_vec(&found.stat).unwrap_or_default();
    line.push(b'\n');
    if host.write_all(&line).await.is_err() {
        return;
    }
    if !stat_only {
        let ok = send_tar(host, move |w| {
            vmrun_containerfs::write_archive(&found.opened.root, &found.located, &found.stat, w)
                .map(drop)
        })
        .await;
        if !ok {
            return;
        }
    }
    let _ = host.shutdown().await;
}

/// Sends the export tar of `opened` and [`DATA_TAR_END`], then closes.
pub async fn send_export<S>(host: &mut S, opened: Opened)
where
    S: AsyncWrite + Unpin,
{
    if send_tar(host, move |w| {
        vmrun_containerfs::write_export(&opened.root, w).map(drop)
    })
    .await
    {
        let _ = host.shutdown().await;
    }
}

/// Sends what `write` writes on a blocking thread, then [`DATA_TAR_END`]; false when it
/// failed or the host went away.
async fn send_tar<S, F>(host: &mut S, write: F) -> bool
where
    S: AsyncWrite + Unpin,
    F: FnOnce(io::BufWriter<ChannelWriter>) -> io::Result<()> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    let writer = tokio::task::spawn_blocking(move || {
        write(io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx)))
    });
    while let Some(chunk) = rx.recv().await {
        if host.write_all(&chunk).await.is_err() {
            return false;
        }
    }
    match writer.await {
        Ok(Ok(())) => host.write_all(DATA_TAR_END).await.is_ok(),
        Ok(Err(e)) => {
            tracing::warn!("archiving a container's files: {e}");
            false
        }
        Err(e) => {
            tracing::warn!("archiving a container's files: {e}");
            false
        }
    }
}

/// Reads an async reader from a blocking thread.
struct BlockOn<R> {
    inner: R,
    handle: tokio::runtime::Handle,
}

impl<R: AsyncRead + Unpin> Read for BlockOn<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.handle.block_on(self.inner.read(buf))
    }
}

/// Receives a chunked tar from `host`, extracts it into directory `path` of `opened`
/// and answers the outcome as one JSON line, then closes.
pub async fn receive<S>(
    host: &mut S,
    opened: Opened,
    path: String,
    opts: ExtractOptions,
    user: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut to_extract, from_host) = tokio::io::duplex(256 * 1024);
    let mut reader = BlockOn {
        inner: from_host,
        handle: tokio::runtime::Handle::current(),
    };
    let extracting = tokio::task::spawn_blocking(move || {
        let done = vmrun_containerfs::extract_into(
            &opened.root,
            &path,
            opts,
            user.as_deref(),
            &mut reader,
        )
        .map_err(fs_error);
        // The rest of the input (the tar's padding, or all of it after an error).
        let _ = io::copy(&mut reader, &mut io::sink());
        done
    });
    let (mut rd, mut wr) = tokio::io::split(host);
    let received = vmrun_agent_protocol::forward::receive_chunks(&mut rd, &mut to_extract).await;
    drop(to_extract);
    let mut outcome = match extracting.await {
        Ok(r) => r,
        Err(e) => Err(err(ErrorKind::Internal, format!("extracting: {e}"))),
    };
    if let (Ok(()), Err(e)) = (&outcome, received) {
        outcome = Err(err(
            ErrorKind::BadRequest,
            format!("the archive ended early: {e}"),
        ));
    }
    let mut line = serde_json::to_vec(&outcome).unwrap_or_default();
    line.push(b'\n');
    if wr.write_all(&line).await.is_ok() {
        let _ = wr.shutdown().await;
    }
}
