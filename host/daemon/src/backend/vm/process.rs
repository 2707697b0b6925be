//! [`VmProcess`]: a container's init or an exec inside a microVM, driven through the
//! guest agent. Stdio is an agent attach stream: the guest's `vmrun-shim` serves it
//! exactly as the native shim does (docker-framed unless there is a terminal).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use vmrun_agent_protocol::{ExitInfo, StreamTarget};

use super::machine::Machine;
use crate::backend::{AttachIo, AttachOptions, BackendError, ExitStatus, ProcessHandle};

/// One process the agent watches, by its agent id (container id or exec id).
pub struct VmProcess {
    machine: Arc<Machine>,
    id: String,
}

impl VmProcess {
    /// The process `id` in `machine`.
    pub fn new(machine: Arc<Machine>, id: impl Into<String>) -> Self {
        VmProcess {
            machine,
            id: id.into(),
        }
    }
}

fn exit_status(info: ExitInfo) -> ExitStatus {
    ExitStatus {
        exit_code: info.exit_code,
        oom_killed: info.oom_killed,
        finished_at: info.finished_at,
    }
}

#[async_trait]
impl ProcessHandle for VmProcess {
    async fn attach(&self, opts: AttachOptions) -> Result<Box<dyn AttachIo>, BackendError> {
        let output = opts.stdout || opts.stderr;
        let open = |stdin: bool, stdout: bool, stderr: bool| {
            let target = StreamTarget::Attach {
                id: self.id.clone(),
                stdin,
                stdout,
                stderr,
            };
            self.machine
                .call("attaching", self.machine.agent().open_stream(target))
        };
        // Input goes on a connection of its own, so that its end (a close: half-closes
        // do not cross vhost-device-vsock) does not end the output.
        let out = open(opts.stdin && !output, opts.stdout, opts.stderr).await?;
        let input = if opts.stdin && output {
            Some(open(true, false, false).await?)
        } else {
            None
        };
        Ok(Box::new(AttachStream {
            stdin: opts.stdin,
            out,
            input,
        }))
    }

    async fn start(&self) -> Result<i32, BackendError> {
        self.machine
            .call("starting", self.machine.agent().start(&self.id))
            .await
    }

    async fn wait(&self) -> Result<ExitStatus, BackendError> {
        self.machine
            .call_until("waiting", None, self.machine.agent().wait(&self.id))
            .await
            .map(|info| {
                tracing::debug!(id = %self.id, code = info.exit_code, "exited in the guest");
                exit_status(info)
            })
    }

    async fn resize(&self, height: u16, width: u16) -> Result<(), BackendError> {
        self.machine
            .call(
                "resizing",
                self.machine.agent().resize(&self.id, height, width),
            )
            .await
    }
}

/// An attach stream over hybrid vsock: output (and input, when only input was asked)
/// on `out`, input on `input`. Without stdin the client's end of input is not passed
/// on: it would close the output's connection.
struct AttachStream {
    stdin: bool,
    out: UnixStream,
    input: Option<UnixStream>,
}

impl AttachStream {
    fn writer(&mut self) -> &mut UnixStream {
        match &mut self.input {
            Some(input) => input,
            None => &mut self.out,
        }
    }
}

impl AsyncRead for AttachStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.out).poll_read(cx, buf)
    }
}

impl AsyncWrite for AttachStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.writer()).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.writer()).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.stdin {
            Pin::new(self.writer()).poll_shutdown(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }
}
