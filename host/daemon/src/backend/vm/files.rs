//! `docker cp` and `docker export` of containers in VMs: the agent resolves paths and
//! writes or reads the tars in the guest ([`StreamTarget::Archive`],
//! [`StreamTarget::Extract`], [`StreamTarget::Export`]), with the same rules as native
//! containers (`vmrun-containerfs`); this side turns its streams into the API's.
//!
//! A running container is reached in its VM; a stopped one's root file system is named
//! to the agent ([`FilesAt::stopped`]), which mounts it for the one stream: in the shared
//! VM (booted if needed) or in a VM booted for the operation, which [`FilesAt`] keeps
//! until the stream ends. For `docker cp` its volumes and binds are mounted over it as
//! well ([`FilesAt::stopped_mounts`]: host directories shared into the VM for the
//! operation, volumes on the shared VM's data disk), as dockerd and the native backend do
//! for a stopped container.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use vmrun_agent_client::ClientError;
use vmrun_agent_protocol::{
    AgentError, ErrorKind, RootfsSpec, StoppedMount, StreamTarget, DATA_TAR_END,
};

use super::machine::{agent_error, Machine};
use super::shares::{self, ContainerShares, GuestShare};
use crate::backend::{
    BackendError, ByteStream, ContainerSpec, ExtractOptions, MountSpec, PathStat,
};

/// Longest stat line accepted.
const MAX_LINE: u64 = 64 * 1024;

/// Where a container's files are for one operation.
pub struct FilesAt {
    /// The VM holding them.
    pub machine: Arc<Machine>,
    /// The stopped container's root file system in that VM; `None`: it runs there.
    pub stopped: Option<RootfsSpec>,
    /// The stopped container's volumes and binds, sources in that VM.
    pub stopped_mounts: Vec<StoppedMount>,
    /// Kept until the operation ends (a VM booted for it, shut down when dropped; the
    /// shares of the stopped container's host directories).
    pub _keep: Option<Box<dyn Send + Sync>>,
}

impl FilesAt {
    /// Container files in `machine`, where the container runs.
    pub fn running(machine: Arc<Machine>) -> FilesAt {
        FilesAt {
            machine,
            stopped: None,
            stopped_mounts: Vec::new(),
            _keep: None,
        }
    }
}

/// The mounts of a stopped container for one operation in `machine`: `shares` (host
/// directories) connected under names of their own (so two operations never meet, nor
/// the container's own shares), and `mounts` (sources in the guest, the shares' among
/// them) as the agent binds them. The shares last as long as the returned guard.
pub async fn stopped_mounts(
    machine: &Arc<Machine>,
    shares: Vec<GuestShare>,
    mounts: &[MountSpec],
) -> Result<(Vec<StoppedMount>, ContainerShares), BackendError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut renamed = Vec::with_capacity(shares.len());
    let mut out: Vec<StoppedMount> = mounts
        .iter()
        .map(|m| StoppedMount {
            source: m.source.clone(),
            destination: m.destination.clone(),
            read_only: m.read_only,
        })
        .collect();
    for share in shares {
        let old = vmrun_agent_protocol::share_path(&share.id);
        let id = format!("{}-f{n}", share.id);
        let new = vmrun_agent_protocol::share_path(&id);
        for m in out.iter_mut().filter(|m| m.source == old) {
            m.source = new.clone();
        }
        renamed.push(GuestShare { id, ..share });
    }
    let running = shares::connect(machine, renamed).await?;
    Ok((out, running))
}

fn not_found(c: &ContainerSpec, path: &str) -> BackendError {
    BackendError::NotFound(format!(
        "Could not find the file {path} in container {}",
        c.name
    ))
}

/// An agent error about `path` as the backend reports it: a missing file is a not-found.
fn files_error(c: &ContainerSpec, path: &str, what: &str, e: ClientError) -> BackendError {
    match e {
        ClientError::Agent(a) => agent_failure(c, path, what, a),
        other => agent_error(what, other),
    }
}

fn agent_failure(c: &ContainerSpec, path: &str, what: &str, a: AgentError) -> BackendError {
    match a.kind {
        ErrorKind::NotFound => not_found(c, path),
        ErrorKind::BadRequest => BackendError::BadRequest(a.message),
        ErrorKind::Conflict => BackendError::Gone(a.message),
        _ => BackendError::Failed(format!("{what}: {}", a.message)),
    }
}

async fn open(
    at: &FilesAt,
    c: &ContainerSpec,
    path: &str,
    what: &str,
    target: StreamTarget,
) -> Result<UnixStream, BackendError> {
    // The deadline covers opening (the agent resolves the path before it answers).
    let opened = at
        .machine
        .call(what, async {
            Ok::<_, ClientError>(at.machine.agent().open_stream(target).await)
        })
        .await?;
    opened.map_err(|e| files_error(c, path, what, e))
}

fn io_failed(what: &str) -> impl Fn(std::io::Error) -> BackendError + '_ {
    move |e| BackendError::Failed(format!("{what}: {e}"))
}

/// Opens an archive stream of `path` and reads its stat line.
async fn archive_stream(
    at: &FilesAt,
    c: &ContainerSpec,
    path: &str,
    stat_only: bool,
) -> Result<(PathStat, BufReader<UnixStream>), BackendError> {
    let what = "reading the container's files";
    let target = StreamTarget::Archive {
        id: c.id.clone(),
        path: path.to_owned(),
        stopped: at.stopped.clone(),
        stopped_mounts: at.stopped_mounts.clone(),
        stat_only,
    };
    let mut reader = BufReader::new(open(at, c, path, what, target).await?);
    let mut line = Vec::new();
    (&mut reader)
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .await
        .map_err(io_failed(what))?;
    let stat = serde_json::from_slice(&line).map_err(|e| {
        BackendError::Failed(format!("{what}: the agent's stat line is not valid: {e}"))
    })?;
    Ok((stat, reader))
}

/// `HEAD /containers/{id}/archive`.
pub async fn path_stat(
    at: FilesAt,
    c: &ContainerSpec,
    path: &str,
) -> Result<PathStat, BackendError> {
    let (stat, _) = archive_stream(&at, c, path, true).await?;
    Ok(stat)
}

/// `GET /containers/{id}/archive`.
pub async fn archive(
    at: FilesAt,
    c: &ContainerSpec,
    path: &str,
) -> Result<(PathStat, ByteStream), BackendError> {
    let (stat, reader) = archive_stream(&at, c, path, false).await?;
    Ok((stat, tar_stream(reader, at)))
}

/// `GET /containers/{id}/export`.
pub async fn export(at: FilesAt, c: &ContainerSpec) -> Result<ByteStream, BackendError> {
    let target = StreamTarget::Export {
        id: c.id.clone(),
        stopped: at.stopped.clone(),
    };
    let stream = open(&at, c, "/", "exporting the container", target).await?;
    Ok(tar_stream(BufReader::new(stream), at))
}

/// `PUT /containers/{id}/archive`: sends `tar` to the agent in chunks and reads its
/// outcome.
pub async fn extract(
    at: FilesAt,
    c: &ContainerSpec,
    path: &str,
    opts: ExtractOptions,
    tar: ByteStream,
) -> Result<(), BackendError> {
    if c.readonly_rootfs {
        return Err(BackendError::PermissionDenied(
            "container rootfs is marked read-only".into(),
        ));
    }
    let what = "copying into the container";
    let target = StreamTarget::Extract {
        id: c.id.clone(),
        path: path.to_owned(),
        stopped: at.stopped.clone(),
        stopped_mounts: at.stopped_mounts.clone(),
        no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
        copy_uid_gid: opts.copy_uid_gid,
        user: c.process.user.clone(),
    };
    let mut stream = open(&at, c, path, what, target).await?;
    let mut input = tokio_util::io::StreamReader::new(tar);
    vmrun_agent_protocol::forward::send_chunks(&mut input, &mut stream)
        .await
        .map_err(|e| BackendError::BadRequest(format!("reading the archive: {e}")))?;
    let mut line = Vec::new();
    BufReader::new(&mut stream)
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .await
        .map_err(io_failed(what))?;
    let _ = stream.shutdown().await;
    let outcome: Result<(), AgentError> = serde_json::from_slice(&line).map_err(|e| {
        BackendError::Failed(format!("{what}: the agent's answer is not valid: {e}"))
    })?;
    outcome.map_err(|a| agent_failure(c, path, what, a))
}

/// The tar the agent sends, without its [`DATA_TAR_END`] trailer; a stream that ends
/// without it ends in an error. `at` is kept until the end.
fn tar_stream(reader: BufReader<UnixStream>, at: FilesAt) -> ByteStream {
    struct State {
        reader: BufReader<UnixStream>,
        held: Vec<u8>,
        at: Option<FilesAt>,
    }
    let state = State {
        reader,
        held: Vec::new(),
        at: Some(at),
    };
    let stream = futures::stream::try_unfold(state, |mut s| async move {
        let Some(_) = &s.at else {
            return Ok(None);
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = s.reader.read(&mut buf).await?;
            if n == 0 {
                s.at = None;
                if s.held == DATA_TAR_END {
                    return Ok(None);
                }
                return Err(std::io::Error::other(
                    "the container's files came from the VM incomplete",
                ));
            }
            s.held.extend_from_slice(&buf[..n]);
            if s.held.len() > DATA_TAR_END.len() {
                let keep = s.held.split_off(s.held.len() - DATA_TAR_END.len());
                let out = Bytes::from(std::mem::replace(&mut s.held, keep));
                return Ok(Some((out, s)));
            }
        }
    });
    Box::pin(stream.map_err(|e: std::io::Error| e))
}
