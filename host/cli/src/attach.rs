//! Streaming a container's stdio to and from the local terminal: the
//! hijacked attach/exec streams, raw mode for `-t`, terminal resizes
//! (SIGWINCH) and signal forwarding.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;

use bollard::container::LogOutput;
use bollard::errors::Error as ApiError;
use futures::{Stream, StreamExt};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::api::Api;

/// The output half of an attach or exec stream.
pub type OutputStream = Pin<Box<dyn Stream<Item = Result<LogOutput, ApiError>> + Send>>;
/// The input half of an attach or exec stream.
pub type InputStream = Pin<Box<dyn AsyncWrite + Send>>;

/// Puts a terminal in raw mode and restores it when dropped.
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Switches stdin to raw mode if it is a terminal.
    pub fn stdin() -> Option<Self> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let fd = stdin.as_fd();
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The size (rows, columns) of the terminal on `fd`.
pub fn terminal_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    use std::os::fd::AsRawFd;
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the valid, exclusively
    // borrowed `ws`; `fd` is a live descriptor for the duration of the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// The local terminal's size, from stdout or else stdin.
pub fn local_terminal_size() -> Option<(u16, u16)> {
    terminal_size(std::io::stdout().as_fd()).or_else(|| terminal_size(std::io::stdin().as_fd()))
}

/// What a resize applies to.
#[derive(Debug, Clone)]
pub enum ResizeTarget {
    /// `POST /containers/{id}/resize`.
    Container(String),
    /// `POST /exec/{id}/resize`.
    Exec(String),
}

async fn resize(api: &Api, target: &ResizeTarget, rows: u16, cols: u16) {
    let result = match target {
        ResizeTarget::Container(id) => {
            let opts = bollard::query_parameters::ResizeContainerTTYOptionsBuilder::new()
                .h(i32::from(rows))
                .w(i32::from(cols))
                .build();
            api.docker.resize_container_tty(id, opts).await
        }
        ResizeTarget::Exec(id) => {
            let opts = bollard::exec::ResizeExecOptions {
                height: rows,
                width: cols,
            };
            api.docker.resize_exec(id, opts).await
        }
    };
    if let Err(e) = result {
        tracing::debug!("resize failed: {e}");
    }
}

/// Sends the terminal size now and after every SIGWINCH, until aborted.
pub fn spawn_resize_monitor(api: Api, target: ResizeTarget) -> TaskGuard {
    TaskGuard::one(tokio::spawn(async move {
        if let Some((rows, cols)) = local_terminal_size() {
            resize(&api, &target, rows, cols).await;
        }
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            if let Some((rows, cols)) = local_terminal_size() {
                resize(&api, &target, rows, cols).await;
            }
        }
    }))
}

/// Aborts the tasks it holds when dropped.
pub struct TaskGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl TaskGuard {
    /// Guards one task.
    pub fn one(task: tokio::task::JoinHandle<()>) -> Self {
        Self(vec![task])
    }
}

/// Forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the
/// container (docker's `--sig-proxy`) while the guard lives.
pub fn spawn_signal_proxy(api: &Api, container: &str) -> TaskGuard {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::hangup(), "SIGHUP"),
        (SignalKind::quit(), "SIGQUIT"),
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
    ];
    let mut tasks = Vec::new();
    for (kind, name) in kinds {
        let Ok(mut receiver) = signal(kind) else {
            continue;
        };
        let api = api.clone();
        let container = container.to_string();
        tasks.push(tokio::spawn(async move {
            while receiver.recv().await.is_some() {
                let opts = bollard::query_parameters::KillContainerOptionsBuilder::new()
                    .signal(name)
                    .build();
                if let Err(e) = api.docker.kill_container(&container, Some(opts)).await {
                    tracing::debug!("forwarding {name} failed: {e}");
                }
            }
        }));
    }
    TaskGuard(tasks)
}

/// Writes one output frame to our stdout or stderr.
fn write_frame(frame: LogOutput) -> std::io::Result<()> {
    match frame {
        LogOutput::StdErr { message } => {
            let mut err = std::io::stderr().lock();
            err.write_all(&message)?;
            err.flush()
        }
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            let mut out = std::io::stdout().lock();
            out.write_all(&message)?;
            out.flush()
        }
        LogOutput::StdIn { .. } => Ok(()),
    }
}

/// Copies our stdin into `input` from a helper thread, then half-closes it.
fn spawn_stdin_pump(mut input: InputStream) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if input.write_all(&chunk).await.is_err() || input.flush().await.is_err() {
                return;
            }
        }
        if let Err(e) = input.shutdown().await {
            tracing::debug!("half-closing the attach stream failed: {e}");
        }
    })
}

/// Streams `output` to stdout/stderr until the daemon ends it. With
/// `forward_stdin`, our stdin is copied into `input` and the write side is
/// half-closed when stdin ends, as docker's hijacked streams do.
pub async fn stream_stdio(
    mut output: OutputStream,
    input: InputStream,
    forward_stdin: bool,
) -> Result<(), ApiError> {
    let pump = forward_stdin.then(|| spawn_stdin_pump(input));
    let mut result = Ok(());
    while let Some(frame) = output.next().await {
        match frame {
            Ok(frame) => {
                if let Err(e) = write_frame(frame) {
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        result = Err(ApiError::from(e));
                    }
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if let Some(p) = pump {
        p.abort();
    }
    result
}
