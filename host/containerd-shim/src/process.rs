//! One process of a task (its init or an exec) as containerd sees it: the stdio FIFOs it
//! was given, its state, and the copies between the FIFOs and the agent's attach streams
//! (docker-framed output, split here into stdout and stderr, unless there is a
//! terminal; input on a connection of its own, whose close is the process's end of
//! input).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use containerd_shim::asynchronous::io::{IoTasks, Stdio};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use vmrun_agent_protocol::StreamTarget;
use vmrun_shim::frame::{decode_header, Stream, HEADER_LEN};

use crate::runner::Runner;

/// How long the output may take to reach the FIFOs after the process exited.
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);
/// Buffer of the in-process pipes between the demultiplexer and the FIFO copies.
const PIPE_BUFFER: usize = 64 * 1024;

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created, not started.
    Created,
    /// Started, not exited.
    Running,
    /// Exited with `code` (128 + N on signal N) at `at`.
    Exited { code: u32, at: SystemTime },
}

/// One process.
pub struct Process {
    /// Its id in the guest agent.
    pub agent_id: String,
    /// containerd's stdio for it.
    pub stdio: Stdio,
    /// What containerd is told its pid is.
    pid: AtomicU32,
    io: IoTasks,
    status: watch::Sender<Status>,
    output: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Process {
    /// A created process `agent_id` with `stdio`.
    pub fn new(agent_id: String, stdio: Stdio, pid: u32) -> Self {
        Process {
            agent_id,
            stdio,
            pid: AtomicU32::new(pid),
            io: IoTasks::default(),
            status: watch::Sender::new(Status::Created),
            output: Mutex::new(None),
        }
    }

    /// What containerd is told its pid is.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Its pid from now on (a native process once started).
    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
    }

    /// Connects the process's stdio in the agent to containerd's FIFOs.
    pub async fn attach(&self, runner: &Runner) -> anyhow::Result<()> {
        let stdio = &self.stdio;
        let open = |stdin: bool, stdout: bool, stderr: bool| {
            let target = StreamTarget::Attach {
                id: self.agent_id.clone(),
                stdin,
                stdout,
                stderr,
            };
            runner.call("attaching", runner.agent().open_stream(target))
        };
        let (want_out, want_err) = (!stdio.stdout.is_empty(), !stdio.stderr.is_empty());
        if want_out || want_err {
            let out = open(false, want_out, want_err).await?;
            let task = if stdio.terminal {
                self.io
                    .copy_to_fifo(out, &stdio.stdout)
                    .context("opening the stdout FIFO")?;
                None
            } else {
                let (out_w, out_r) = tokio::io::duplex(PIPE_BUFFER);
                let (err_w, err_r) = tokio::io::duplex(PIPE_BUFFER);
                if want_out {
                    self.io
                        .copy_to_fifo(out_r, &stdio.stdout)
                        .context("opening the stdout FIFO")?;
                }
                if want_err {
                    self.io
                        .copy_to_fifo(err_r, &stdio.stderr)
                        .context("opening the stderr FIFO")?;
                }
                Some(tokio::spawn(demultiplex(out, out_w, err_w)))
            };
            *self.output.lock().unwrap_or_else(|p| p.into_inner()) = task;
        }
        if !stdio.stdin.is_empty() {
            let input = open(true, false, false).await?;
            self.io
                .copy_from_fifo(&stdio.stdin, input)
                .context("opening the stdin FIFO")?;
        }
        Ok(())
    }

    /// The current status.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// Marks the process started.
    pub fn started(&self) {
        self.status.send_replace(Status::Running);
    }

    /// Records the exit once its output has reached the FIFOs (or the drain timed out).
    pub async fn exited(&self, code: u32) {
        let task = self.output.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut task) = task {
            if tokio::time::timeout(OUTPUT_DRAIN, &mut task).await.is_err() {
                log::warn!("{}: output still flowing after the exit", self.agent_id);
                task.abort();
            }
        }
        self.io.shutdown().await;
        self.status.send_replace(Status::Exited {
            code,
            at: SystemTime::now(),
        });
    }

    /// Resolves at the exit: its code and time.
    pub async fn wait(&self) -> (u32, SystemTime) {
        let mut rx = self.status.subscribe();
        loop {
            if let Status::Exited { code, at } = *rx.borrow_and_update() {
                return (code, at);
            }
            if rx.changed().await.is_err() {
                return (255, SystemTime::now());
            }
        }
    }

    /// containerd's CloseIO: the process's stdin ends once containerd's writer is gone.
    pub fn close_input(&self) {
        self.io.close_input();
    }

    /// Ends every copy now (a process deleted without having run).
    pub async fn abort_io(&self) {
        let task = self.output.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            task.abort();
        }
        self.io.abort().await;
    }
}

/// Splits docker-framed output from `from` into `stdout` and `stderr` until its end.
async fn demultiplex(
    mut from: impl AsyncRead + Unpin,
    mut stdout: DuplexStream,
    mut stderr: DuplexStream,
) {
    let mut header = [0u8; HEADER_LEN];
    let mut chunk = Vec::new();
    loop {
        if from.read_exact(&mut header).await.is_err() {
            break;
        }
        let Some((stream, len)) = decode_header(&header) else {
            log::warn!("bad frame header on an attach stream: {header:?}");
            break;
        };
        chunk.resize(len, 0);
        if from.read_exact(&mut chunk).await.is_err() {
            break;
        }
        let to = match stream {
            Stream::Stderr => &mut stderr,
            _ => &mut stdout,
        };
        // A FIFO nobody reads any more must not stop the other stream.
        let _ = to.write_all(&chunk).await;
    }
    let _ = stdout.shutdown().await;
    let _ = stderr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_split_by_stream() {
        let mut framed = Vec::new();
        vmrun_shim::frame::encode(Stream::Stdout, b"out 1\n", &mut framed);
        vmrun_shim::frame::encode(Stream::Stderr, b"err\n", &mut framed);
        vmrun_shim::frame::encode(Stream::Stdout, b"out 2\n", &mut framed);
        let (out_w, mut out_r) = tokio::io::duplex(1024);
        let (err_w, mut err_r) = tokio::io::duplex(1024);
        demultiplex(&framed[..], out_w, err_w).await;
        let (mut out, mut err) = (String::new(), String::new());
        out_r.read_to_string(&mut out).await.unwrap();
        err_r.read_to_string(&mut err).await.unwrap();
        assert_eq!(out, "out 1\nout 2\n");
        assert_eq!(err, "err\n");
    }
}
