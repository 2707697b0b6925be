//! Talking to a `vmrun-shim` over its Unix socket (its JSON-line protocol, see the
//! `vmrun_shim` docs): one connection per request, like the daemon does natively.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use vmrun_agent_protocol::{AgentError, ErrorKind};
use vmrun_shim::{ExitStatus, FailureKind, Reply, Request};

fn internal(what: &str, e: impl std::fmt::Display) -> AgentError {
    AgentError::new(ErrorKind::Internal, format!("{what}: {e}"))
}

/// Maps a shim failure to a protocol error.
pub fn failure_to_error(f: &vmrun_shim::ShimFailure) -> AgentError {
    let kind = match f.kind {
        FailureKind::NotFound => ErrorKind::CommandNotFound,
        FailureKind::PermissionDenied => ErrorKind::PermissionDenied,
        FailureKind::BadUser => ErrorKind::BadUser,
        FailureKind::Other => ErrorKind::Internal,
    };
    AgentError::new(kind, f.message.clone())
}

/// Connects and sends one request line; returns the connection with its reader.
pub async fn send(socket: &Path, request: &Request) -> Result<BufReader<UnixStream>, AgentError> {
    let mut stream = UnixStream::connect(socket).await.map_err(|e| {
        internal(
            &format!("connecting to the shim at {}", socket.display()),
            e,
        )
    })?;
    let mut line = serde_json::to_vec(request).map_err(|e| internal("encoding", e))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .await
        .map_err(|e| internal("writing to the shim", e))?;
    Ok(BufReader::new(stream))
}

async fn read_line(reader: &mut BufReader<UnixStream>) -> Result<String, AgentError> {
    let mut line = String::new();
    let n = reader
        .read_line(&mut line)
        .await
        .map_err(|e| internal("reading from the shim", e))?;
    if n == 0 {
        return Err(AgentError::new(
            ErrorKind::Internal,
            "the shim closed the connection without a reply",
        ));
    }
    Ok(line)
}

/// Sends a request answered by a [`Reply`] line.
pub async fn call(socket: &Path, request: &Request) -> Result<Reply, AgentError> {
    let mut reader = send(socket, request).await?;
    let line = read_line(&mut reader).await?;
    let reply: Reply =
        serde_json::from_str(line.trim_end()).map_err(|e| internal("the shim's reply", e))?;
    match &reply.error {
        Some(f) => Err(failure_to_error(f)),
        None => Ok(reply),
    }
}

/// `Wait`: the exit status, once the process has exited.
pub async fn wait(socket: &Path) -> Result<ExitStatus, AgentError> {
    let mut reader = send(socket, &Request::Wait).await?;
    let line = read_line(&mut reader).await?;
    serde_json::from_str(line.trim_end()).map_err(|e| internal("the shim's exit status", e))
}

/// `Attach`: the connection once the shim has acknowledged, with any bytes it already
/// sent after the acknowledgement.
pub async fn attach(
    socket: &Path,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> Result<(UnixStream, Vec<u8>), AgentError> {
    let mut reader = send(
        socket,
        &Request::Attach {
            stdin,
            stdout,
            stderr,
        },
    )
    .await?;
    let line = read_line(&mut reader).await?;
    let reply: Reply =
        serde_json::from_str(line.trim_end()).map_err(|e| internal("the shim's reply", e))?;
    if let Some(f) = &reply.error {
        return Err(failure_to_error(f));
    }
    let early = reader.buffer().to_vec();
    Ok((reader.into_inner(), early))
}
