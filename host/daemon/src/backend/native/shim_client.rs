//! Launching `vmrun-shim` and speaking its socket protocol.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use vmrun_shim::{ExitStatus, FailureKind, ReadyLine, Reply, Request, ShimConfig, ShimFailure};

use crate::backend::{AttachIo, AttachOptions, BackendError, ProcessHandle};

impl From<ShimFailure> for BackendError {
    fn from(f: ShimFailure) -> Self {
        match f.kind {
            FailureKind::NotFound => BackendError::NotFound(f.message),
            FailureKind::PermissionDenied => BackendError::PermissionDenied(f.message),
            FailureKind::BadUser => BackendError::BadRequest(f.message),
            FailureKind::Other => BackendError::Failed(f.message),
        }
    }
}

/// Write the shim's config next to its other files and start it; returns once the
/// process is created (or creating it failed).
pub async fn launch(
    shim_path: &Path,
    config: &ShimConfig,
    config_path: &Path,
    log_path: &Path,
) -> Result<(ShimProcess, i32), BackendError> {
    let data = serde_json::to_vec(config)
        .map_err(|e| BackendError::Failed(format!("encoding the shim config: {e}")))?;
    tokio::fs::write(config_path, data)
        .await
        .map_err(|e| BackendError::Failed(format!("writing {}: {e}", config_path.display())))?;
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| BackendError::Failed(format!("opening {}: {e}", log_path.display())))?;
    let mut child = tokio::process::Command::new(shim_path)
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| BackendError::Failed(format!("starting {}: {e}", shim_path.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BackendError::Failed("the shim has no stdout".into()))?;
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line).await;
    // The shim stays a child of ours; tokio reaps it when it exits.
    drop(child);
    if let Err(e) = read {
        return Err(BackendError::Failed(format!("reading from the shim: {e}")));
    }
    match serde_json::from_str::<ReadyLine>(line.trim_end()) {
        Ok(ReadyLine::Ready { shim_pid }) => Ok((
            ShimProcess::new(&config.socket, &config.exit_file),
            shim_pid,
        )),
        Ok(ReadyLine::Failed(f)) => Err(f.into()),
        Err(_) => {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            let last = log.lines().last().unwrap_or("no output").to_string();
            Err(BackendError::Failed(format!("the shim failed: {last}")))
        }
    }
}

/// A process watched by a shim, reached through the shim's socket.
pub struct ShimProcess {
    socket: PathBuf,
    exit_file: PathBuf,
}

/// Read the exit status a shim recorded.
pub fn read_exit_file(path: &Path) -> Option<ExitStatus> {
    let data = std::fs::read(path).ok()?;
    serde_json::from_slice(&data).ok()
}

impl ShimProcess {
    /// A handle for the shim listening on `socket` that records the exit in `exit_file`.
    pub fn new(socket: &Path, exit_file: &Path) -> Self {
        ShimProcess {
            socket: socket.to_path_buf(),
            exit_file: exit_file.to_path_buf(),
        }
    }

    async fn wait_on_socket(&self) -> Result<ExitStatus, BackendError> {
        let mut conn = self.connect(&Request::Wait).await?;
        let mut buf = String::new();
        conn.read_to_string(&mut buf)
            .await
            .map_err(|e| BackendError::Gone(format!("waiting: {e}")))?;
        serde_json::from_str(buf.trim_end())
            .map_err(|_| BackendError::Gone("the monitor ended without an exit status".into()))
    }

    async fn connect(&self, request: &Request) -> Result<BufReader<UnixStream>, BackendError> {
        let mut stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            BackendError::Gone(format!(
                "the container's monitor at {} is gone: {e}",
                self.socket.display()
            ))
        })?;
        let mut line = serde_json::to_vec(request)
            .map_err(|e| BackendError::Failed(format!("encoding a request: {e}")))?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .await
            .map_err(|e| BackendError::Gone(format!("talking to the monitor: {e}")))?;
        Ok(BufReader::new(stream))
    }

    async fn call(&self, request: &Request) -> Result<Reply, BackendError> {
        let mut conn = self.connect(request).await?;
        let mut line = String::new();
        conn.read_line(&mut line)
            .await
            .map_err(|e| BackendError::Gone(format!("reading from the monitor: {e}")))?;
        serde_json::from_str(line.trim_end())
            .map_err(|_| BackendError::Gone("the monitor closed the connection".into()))
    }
}

#[async_trait]
impl ProcessHandle for ShimProcess {
    async fn attach(&self, opts: AttachOptions) -> Result<Box<dyn AttachIo>, BackendError> {
        let mut conn = self
            .connect(&Request::Attach {
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr,
            })
            .await?;
        let mut line = String::new();
        conn.read_line(&mut line)
            .await
            .map_err(|e| BackendError::Gone(format!("attaching: {e}")))?;
        let reply: Reply = serde_json::from_str(line.trim_end())
            .map_err(|_| BackendError::Gone("the monitor refused the attach".into()))?;
        if let Some(e) = reply.error {
            return Err(e.into());
        }
        // Nothing else was sent before the ack, so the reader's buffer is empty.
        Ok(Box::new(conn.into_inner()))
    }

    async fn start(&self) -> Result<i32, BackendError> {
        let reply = self.call(&Request::Start).await?;
        if let Some(e) = reply.error {
            return Err(e.into());
        }
        reply
            .pid
            .ok_or_else(|| BackendError::Failed("the monitor gave no pid".into()))
    }

    async fn wait(&self) -> Result<ExitStatus, BackendError> {
        match self.wait_on_socket().await {
            Ok(status) => Ok(status),
            // The shim may have finished before we asked: its exit file has the answer.
            Err(e) => read_exit_file(&self.exit_file).ok_or(e),
        }
    }

    async fn resize(&self, height: u16, width: u16) -> Result<(), BackendError> {
        let reply = self.call(&Request::Resize { height, width }).await?;
        match reply.error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}
