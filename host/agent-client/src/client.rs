//! [`AgentClient`]: one control connection with requests multiplexed by id, plus a fresh
//! connection per stream.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use vmrun_agent_protocol::frame::encode;
use vmrun_agent_protocol::frame::nonblocking::{read_frame, write_frame};
use vmrun_agent_protocol::{
    check_welcome, AgentError, ContainerStats, CreateContainer, CreateExec, ExitInfo, FrameError,
    Hello, HelloReply, ListEntry, Op, ProcessInfo, Reply, Request, Response, ShutdownAction,
    StreamTarget, VersionError,
};

/// Errors talking to the agent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error("connecting to the agent: {0}")]
    Connect(String),
    /// Reading or writing frames failed.
    #[error("agent connection: {0}")]
    Frame(#[from] FrameError),
    /// The agent speaks another protocol version, or refused us.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// The agent answered with an error.
    #[error("agent: {}", .0.message)]
    Agent(AgentError),
    /// The control connection is gone.
    #[error("the agent connection closed")]
    Closed,
    /// A reply of the wrong type.
    #[error("unexpected reply from the agent: {0}")]
    Unexpected(String),
}

/// How to open a connection to the agent. Every stream is a new connection.
#[derive(Debug, Clone)]
pub enum Connector {
    /// A Unix socket the agent listens on (`vmrun-agent --listen unix:PATH`).
    Unix(PathBuf),
    /// A VM's hybrid-vsock socket (`CONNECT <port>\n`), retried until `timeout`.
    HybridVsock {
        /// The VM's vsock socket (`VmInstance::vsock_path`).
        path: PathBuf,
        /// The guest port ([`vmrun_agent_protocol::AGENT_PORT`]).
        port: u32,
        /// How long to retry while the guest is not listening yet.
        timeout: Duration,
    },
}

impl Connector {
    /// Opens one raw connection.
    pub async fn open(&self) -> Result<UnixStream, ClientError> {
        match self {
            Connector::Unix(path) => UnixStream::connect(path)
                .await
                .map_err(|e| ClientError::Connect(format!("{}: {e}", path.display()))),
            Connector::HybridVsock {
                path,
                port,
                timeout,
            } => {
                let (path, port, timeout) = (path.clone(), *port, *timeout);
                let std_stream =
                    tokio::task::spawn_blocking(move || connect_hybrid(&path, port, timeout))
                        .await
                        .map_err(|e| ClientError::Connect(e.to_string()))??;
                std_stream
                    .set_nonblocking(true)
                    .map_err(|e| ClientError::Connect(e.to_string()))?;
                UnixStream::from_std(std_stream).map_err(|e| ClientError::Connect(e.to_string()))
            }
        }
    }
}

/// How long one hybrid-vsock attempt waits for the device's `OK`. A `CONNECT` sent while
/// the guest's vsock driver is still coming up can go unanswered for good, so attempts are
/// bounded and repeated rather than one attempt waiting out the whole timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// [`vmrun_vm::hybrid_vsock::connect`] in bounded attempts until `timeout`.
fn connect_hybrid(
    path: &std::path::Path,
    port: u32,
    timeout: Duration,
) -> Result<std::os::unix::net::UnixStream, ClientError> {
    use vmrun_vm::HybridVsockError;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match vmrun_vm::hybrid_vsock::connect(path, port, left.min(ATTEMPT_TIMEOUT)) {
            Ok((stream, _)) => return Ok(stream),
            Err(HybridVsockError::Timeout { .. }) if left > ATTEMPT_TIMEOUT => {
                tracing::debug!(path = %path.display(), port, "no reply yet; trying again");
            }
            Err(e) => return Err(ClientError::Connect(e.to_string())),
        }
    }
}

/// What the agent said in its welcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The agent's build.
    pub agent: String,
    /// The guest's `uname -r`.
    pub kernel_release: String,
    /// Whether our clock in the hello moved the guest's.
    pub clock_adjusted: bool,
}

/// [`AgentClient::version`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentVersion {
    /// Protocol version.
    pub protocol: u32,
    /// The agent's build.
    pub agent: String,
    /// The guest's `uname -r`.
    pub kernel_release: String,
    /// The agent's resident memory, KiB.
    pub agent_rss_kib: u64,
}

/// The hello exchange on a fresh connection (the host's clock goes with it).
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    client: &str,
) -> Result<Welcome, ClientError> {
    write_frame(stream, &Hello::new(client, host_time())).await?;
    let reply: HelloReply = read_frame(stream).await?;
    check_welcome(&reply)?;
    match reply {
        HelloReply::Welcome {
            agent,
            kernel_release,
            clock_adjusted,
            ..
        } => Ok(Welcome {
            agent,
            kernel_release,
            clock_adjusted,
        }),
        HelloReply::Refused { message, .. } => Err(VersionError::Refused(message).into()),
    }
}

/// The host's wall clock in nanoseconds since the epoch.
pub fn host_time() -> Option<i64> {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    i64::try_from(d.as_nanos()).ok()
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Reply, AgentError>>>>>;

/// A client of one agent. Cheap to share (`Arc`); calls may run concurrently.
pub struct AgentClient {
    connector: Connector,
    name: String,
    welcome: Welcome,
    writer: tokio::sync::Mutex<WriteHalf<UnixStream>>,
    pending: Pending,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for AgentClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

macro_rules! expect {
    ($reply:expr, $pat:pat => $out:expr) => {
        match $reply {
            $pat => Ok($out),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    };
}

impl AgentClient {
    /// Opens the control connection and says hello; `client` names us in the agent's log.
    pub async fn connect(connector: Connector, client: &str) -> Result<Self, ClientError> {
        let mut stream = connector.open().await?;
        let welcome = handshake(&mut stream, client).await?;
        let (rd, wr) = tokio::io::split(stream);
        let pending: Pending = Arc::default();
        let reader = tokio::spawn(read_responses(rd, pending.clone()));
        Ok(AgentClient {
            connector,
            name: client.to_string(),
            welcome,
            writer: tokio::sync::Mutex::new(wr),
            pending,
            next_id: AtomicU64::new(1),
            reader,
        })
    }

    /// What the agent said when we connected.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Sends one request and waits for its reply.
    pub async fn call(&self, op: Op) -> Result<Reply, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode(&Request { id, op })?;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| ClientError::Closed)?
            .insert(id, tx);
        let written = self.writer.lock().await.write_all(&frame).await;
        if written.is_err() {
            if let Ok(mut p) = self.pending.lock() {
                p.remove(&id);
            }
            return Err(ClientError::Closed);
        }
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(ClientError::Agent(e)),
            Err(_) => Err(ClientError::Closed),
        }
    }

    /// Opens a stream connection; the returned socket carries the raw bytes.
    pub async fn open_stream(&self, target: StreamTarget) -> Result<UnixStream, ClientError> {
        let mut stream = self.connector.open().await?;
        handshake(&mut stream, &self.name).await?;
        write_frame(
            &mut stream,
            &Request {
                id: 0,
                op: Op::OpenStream { target },
            },
        )
        .await?;
        let resp: Response = read_frame(&mut stream).await?;
        match resp.result {
            Ok(Reply::StreamReady) => Ok(stream),
            Ok(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
            Err(e) => Err(ClientError::Agent(e)),
        }
    }

    /// Liveness.
    pub async fn ping(&self) -> Result<(), ClientError> {
        expect!(self.call(Op::Ping).await?, Reply::Pong => ())
    }

    /// Protocol version, agent build, guest kernel release, the agent's RSS in KiB.
    pub async fn version(&self) -> Result<AgentVersion, ClientError> {
        expect!(self.call(Op::Version).await?,
            Reply::Version { protocol, agent, kernel_release, agent_rss_kib } =>
                AgentVersion { protocol, agent, kernel_release, agent_rss_kib })
    }

    /// Sends the host's clock; returns (adjusted, guest minus host in ms before).
    pub async fn set_time(&self) -> Result<(bool, i64), ClientError> {
        let unix_nanos = host_time().ok_or(ClientError::Unexpected("host clock".into()))?;
        expect!(self.call(Op::SetTime { unix_nanos }).await?,
            Reply::TimeSet { adjusted, offset_ms } => (adjusted, offset_ms))
    }

    /// Asks the agent to end the VM (it replies first).
    pub async fn shutdown(&self, action: ShutdownAction) -> Result<(), ClientError> {
        expect!(self.call(Op::Shutdown { action }).await?, Reply::Done => ())
    }

    /// Mounts a layer disk; returns its guest path and whether it was mounted already.
    pub async fn mount_layer(
        &self,
        device: impl Into<PathBuf>,
        id: &str,
    ) -> Result<(PathBuf, bool), ClientError> {
        let op = Op::MountLayer {
            device: device.into(),
            id: id.to_string(),
        };
        expect!(self.call(op).await?, Reply::Mounted { path, already } => (path, already))
    }

    /// Mounts the data disk.
    pub async fn mount_data_disk(
        &self,
        device: impl Into<PathBuf>,
    ) -> Result<(PathBuf, bool), ClientError> {
        let op = Op::MountDataDisk {
            device: device.into(),
        };
        expect!(self.call(op).await?, Reply::Mounted { path, already } => (path, already))
    }

    /// Removes a file or tree under the guest's data directory (`path` relative to it).
    pub async fn remove_data(&self, path: impl Into<PathBuf>) -> Result<(), ClientError> {
        let op = Op::RemoveData { path: path.into() };
        expect!(self.call(op).await?, Reply::Done => ())
    }

    /// Names in a directory under the guest's data directory (none when it is missing).
    pub async fn list_data(&self, path: impl Into<PathBuf>) -> Result<Vec<String>, ClientError> {
        let op = Op::ListData { path: path.into() };
        expect!(self.call(op).await?, Reply::Names { names } => names)
    }

    /// Unmounts layer `id` (if mounted) and removes its image from the data disk.
    pub async fn remove_layer(&self, id: &str) -> Result<(), ClientError> {
        let op = Op::RemoveLayer { id: id.to_string() };
        expect!(self.call(op).await?, Reply::Done => ())
    }

    /// Makes a directory (and parents) under the guest's data directory.
    pub async fn make_data_dir(&self, path: impl Into<PathBuf>) -> Result<(), ClientError> {
        let op = Op::MakeDataDir { path: path.into() };
        expect!(self.call(op).await?, Reply::Done => ())
    }

    /// Fills an empty directory under the guest's data directory (a volume) with what
    /// an image has at a path; whether anything was copied.
    pub async fn fill_data_dir(
        &self,
        req: vmrun_agent_protocol::FillDataDir,
    ) -> Result<bool, ClientError> {
        let op = Op::FillDataDir(Box::new(req));
        expect!(self.call(op).await?, Reply::Filled { copied } => copied)
    }

    /// Stores `size` bytes read from `source` as `path` under the guest's data directory
    /// (atomically: the file appears whole or not at all).
    pub async fn put_file<R: AsyncRead + Unpin>(
        &self,
        path: impl Into<PathBuf>,
        size: u64,
        source: &mut R,
    ) -> Result<(), ClientError> {
        let path = path.into();
        let target = StreamTarget::PutFile {
            path: path.clone(),
            size,
        };
        let mut stream = self.open_stream(target).await?;
        let sent = tokio::io::copy(&mut source.take(size), &mut stream)
            .await
            .map_err(FrameError::Io)?;
        if sent != size {
            return Err(ClientError::Unexpected(format!(
                "{}: the source ended after {sent} of {size} bytes",
                path.display()
            )));
        }
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .map_err(FrameError::Io)?;
        match answer.trim_end().strip_prefix("error: ") {
            None if answer == "ok\n" => Ok(()),
            Some(why) => Err(ClientError::Agent(AgentError::new(
                vmrun_agent_protocol::ErrorKind::Internal,
                format!("storing {}: {why}", path.display()),
            ))),
            None => Err(ClientError::Unexpected(format!(
                "storing {}: the agent answered {answer:?}",
                path.display()
            ))),
        }
    }

    /// Creates a container; returns the shim's pid in the guest.
    pub async fn create(&self, req: CreateContainer) -> Result<i32, ClientError> {
        expect!(self.call(Op::Create(Box::new(req))).await?, Reply::Created { shim_pid } => shim_pid)
    }

    /// Creates an exec.
    pub async fn exec(&self, req: CreateExec) -> Result<i32, ClientError> {
        expect!(self.call(Op::Exec(Box::new(req))).await?, Reply::Created { shim_pid } => shim_pid)
    }

    /// Starts a container or exec; returns its pid in the guest.
    pub async fn start(&self, id: &str) -> Result<i32, ClientError> {
        expect!(self.call(Op::Start { id: id.into() }).await?, Reply::Started { pid } => pid)
    }

    /// Waits for a container or exec to exit.
    pub async fn wait(&self, id: &str) -> Result<ExitInfo, ClientError> {
        expect!(self.call(Op::Wait { id: id.into() }).await?, Reply::Exited(info) => info)
    }

    /// Signals a container or exec.
    pub async fn kill(&self, id: &str, signal: i32) -> Result<(), ClientError> {
        let op = Op::Kill {
            id: id.into(),
            signal,
        };
        expect!(self.call(op).await?, Reply::Done => ())
    }

    /// Resizes a terminal.
    pub async fn resize(&self, id: &str, height: u16, width: u16) -> Result<(), ClientError> {
        let op = Op::Resize {
            id: id.into(),
            height,
            width,
        };
        expect!(self.call(op).await?, Reply::Done => ())
    }

    /// Forgets a container.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), ClientError> {
        let op = Op::Delete {
            id: id.into(),
            force,
        };
        expect!(self.call(op).await?, Reply::Done => ())
    }

    /// The json-file log.
    pub async fn logs(&self, id: &str) -> Result<String, ClientError> {
        expect!(self.call(Op::Logs { id: id.into() }).await?, Reply::Logs { content } => content)
    }

    /// cgroup figures.
    pub async fn stats(&self, id: &str) -> Result<ContainerStats, ClientError> {
        expect!(self.call(Op::Stats { id: id.into() }).await?, Reply::Stats(s) => s)
    }

    /// Freezes (`docker pause`) or thaws a container.
    pub async fn freeze(&self, id: &str, frozen: bool) -> Result<(), ClientError> {
        let op = Op::Freeze {
            id: id.into(),
            frozen,
        };
        expect!(self.call(op).await?, Reply::Done => ())
    }

    /// Joins a container to a user network's bridge in the guest.
    pub async fn connect_network(
        &self,
        id: &str,
        link: vmrun_agent_protocol::network::NetworkLink,
    ) -> Result<(), ClientError> {
        let op = Op::ConnectNetwork {
            id: id.into(),
            link,
        };
        expect!(self.call(op).await?, Reply::Done => ())
    }

    /// Removes a container's veth pair (named by its bridge side) in the guest.
    pub async fn disconnect_network(&self, id: &str, host_veth: &str) -> Result<(), ClientError> {
        let op = Op::DisconnectNetwork {
            id: id.into(),
            host_veth: host_veth.into(),
        };
        expect!(self.call(op).await?, Reply::Done => ())
    }

    /// Rewrites a container's `/etc/hosts` in place.
    pub async fn write_hosts(&self, id: &str, hosts: String) -> Result<(), ClientError> {
        let op = Op::WriteHosts {
            id: id.into(),
            hosts,
        };
        expect!(self.call(op).await?, Reply::Done => ())
    }

    /// Changes a container's cgroup limits (an OCI `linux.resources` object).
    pub async fn update_resources(
        &self,
        id: &str,
        resources: serde_json::Value,
    ) -> Result<(), ClientError> {
        let op = Op::UpdateResources {
            id: id.into(),
            resources,
        };
        expect!(self.call(op).await?, Reply::Done => ())
    }

    /// Processes of a container.
    pub async fn top(&self, id: &str) -> Result<Vec<ProcessInfo>, ClientError> {
        expect!(self.call(Op::Top { id: id.into() }).await?, Reply::Top { processes } => processes)
    }

    /// Everything the agent runs.
    pub async fn list(&self) -> Result<Vec<ListEntry>, ClientError> {
        expect!(self.call(Op::List).await?, Reply::List { entries } => entries)
    }
}

/// Hands each response to its caller; ends (failing every caller) when the connection does.
async fn read_responses(mut rd: ReadHalf<UnixStream>, pending: Pending) {
    loop {
        match read_frame::<Response, _>(&mut rd).await {
            Ok(resp) => {
                let Some(id) = resp.id else {
                    tracing::warn!("agent error without a request id: {:?}", resp.result);
                    continue;
                };
                let tx = pending.lock().ok().and_then(|mut p| p.remove(&id));
                if let Some(tx) = tx {
                    let _ = tx.send(resp.result);
                }
            }
            Err(e) if e.recoverable() => tracing::warn!("agent sent a bad frame: {e}"),
            Err(_) => break,
        }
    }
    if let Ok(mut p) = pending.lock() {
        p.clear();
    }
}
