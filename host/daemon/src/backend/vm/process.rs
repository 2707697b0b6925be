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
        let target = StreamTarget::Attach {
            id: self.id.clone(),
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        };
        let stream = self
            .machine
            .call("attaching", self.machine.agent().open_stream(target))
            .await?;
        Ok(Box::new(AttachStream {
            stream,
            stdin: opts.stdin,
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
            .map(exit_status)
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

/// An attach stream over hybrid vsock. Without stdin, the client's end of input is not
/// passed on: a half-close does not cross `vhost-device-vsock`, which closes the whole
/// connection, output included.
struct AttachStream {
    stream: UnixStream,
    stdin: bool,
}

impl AsyncRead for AttachStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for AttachStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.stdin {
            Pin::new(&mut self.stream).poll_shutdown(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }
}
