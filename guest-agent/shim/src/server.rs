//! The shim's event loop: the request socket and the process's lifecycle.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, oneshot, watch};
use vmrun_shim::frame::{self, Stream};
use vmrun_shim::logfile::{LogFile, LogWriter};
use vmrun_shim::{ExitStatus, FailureKind, Reply, Request, ShimConfig, ShimFailure};

use crate::process::{Prepared, Started};
use crate::relay::{self, AsyncPipe, OutputTx};

/// How long output may keep flowing after the process has exited (children that kept a
/// copy of stdout open) before the shim stops reading.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

struct Shared {
    config: ShimConfig,
    prepared: Mutex<Prepared>,
    started_tx: Mutex<Option<oneshot::Sender<Result<Started, ShimFailure>>>>,
    output: Mutex<Option<OutputTx>>,
    stdin: tokio::sync::Mutex<Option<AsyncPipe>>,
    console: Mutex<Option<OwnedFd>>,
    /// Set once a start was attempted: stdin is in place (or never will be).
    started: watch::Sender<bool>,
    exit: watch::Sender<Option<ExitStatus>>,
}

/// Serve requests until the process has exited and its status is recorded.
pub async fn serve(
    config: ShimConfig,
    prepared: Prepared,
    listener: std::os::unix::net::UnixListener,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(listener).context("registering the socket")?;
    let (started_tx, started_rx) = oneshot::channel();
    let (tx, _) = broadcast::channel(relay::OUTPUT_BACKLOG);
    let shared = Arc::new(Shared {
        config,
        prepared: Mutex::new(prepared),
        started_tx: Mutex::new(Some(started_tx)),
        output: Mutex::new(Some(tx)),
        stdin: tokio::sync::Mutex::new(None),
        console: Mutex::new(None),
        started: watch::channel(false).0,
        exit: watch::channel(None).0,
    });

    let mut connections = tokio::task::JoinSet::new();
    let lifecycle = lifecycle(shared.clone(), started_rx);
    tokio::pin!(lifecycle);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { connections.spawn(handle(shared.clone(), stream)); }
                Err(e) => tracing::warn!("accept: {e}"),
            },
            () = &mut lifecycle => break,
        }
    }
    // Attached clients get the rest of the output; give them a moment to take it.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let _ = std::fs::remove_file(&shared.config.socket);
    Ok(())
}

async fn lifecycle(
    shared: Arc<Shared>,
    started_rx: oneshot::Receiver<Result<Started, ShimFailure>>,
) {
    let status = match started_rx.await {
        Ok(Ok(started)) => run_to_exit(&shared, started).await,
        Ok(Err(failure)) => {
            let code = match failure.kind {
                FailureKind::NotFound => 127,
                FailureKind::PermissionDenied => 126,
                _ => 128,
            };
            (code, false)
        }
        Err(_) => (128, false),
    };
    let (exit_code, oom_killed) = status;
    if let Ok(mut p) = shared.prepared.lock() {
        p.cleanup(&shared.config);
    }
    let status = ExitStatus {
        exit_code,
        oom_killed,
        finished_at: vmrun_shim::now_rfc3339(),
    };
    if let Err(e) = write_exit_file(&shared.config, &status) {
        tracing::error!("recording the exit status: {e:#}");
    }
    // Waiters first: a client that sees its attach stream end can then ask the daemon for
    // the exit code and find it recorded.
    shared.exit.send_replace(Some(status));
    shared.output.lock().map(|mut o| o.take()).ok();
}

async fn run_to_exit(shared: &Arc<Shared>, started: Started) -> (i32, bool) {
    let log = match &shared.config.log_path {
        Some(path) => match LogFile::open(path, shared.config.log_rotation) {
            Ok(f) => Some(Arc::new(Mutex::new(LogWriter::new(f)))),
            Err(e) => {
                tracing::warn!("opening {}: {e}", path.display());
                None
            }
        },
        None => None,
    };
    let tx = shared.output.lock().ok().and_then(|o| o.clone());
    let mut pumps = tokio::task::JoinSet::new();
    if let Some(tx) = tx {
        for (stream, fd) in started.outputs {
            pumps.spawn(relay::pump_output(fd, stream, log.clone(), tx.clone()));
        }
    }

    let pid = nix::unistd::Pid::from_raw(started.pid);
    let code = tokio::task::spawn_blocking(move || wait_exit_code(pid))
        .await
        .unwrap_or(255);
    let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, async {
        while pumps.join_next().await.is_some() {}
    })
    .await;
    pumps.abort_all();
    *shared.stdin.lock().await = None;
    if let Some(log) = log {
        if let Ok(mut w) = log.lock() {
            let _ = w.finish();
        }
    }
    let oom = shared
        .prepared
        .lock()
        .map(|p| p.oom_killed())
        .unwrap_or(false);
    (code, oom)
}

fn wait_exit_code(pid: nix::unistd::Pid) -> i32 {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("waiting for {pid}: {e}");
                return 255;
            }
        }
    }
}

fn write_exit_file(config: &ShimConfig, status: &ExitStatus) -> anyhow::Result<()> {
    let tmp = config.exit_file.with_extension("tmp");
    let data = serde_json::to_vec(status)?;
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &config.exit_file)
        .with_context(|| format!("renaming to {}", config.exit_file.display()))?;
    Ok(())
}

async fn reply(stream: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await
}

async fn handle(shared: Arc<Shared>, stream: UnixStream) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let request: Request = match serde_json::from_str(line.trim_end()) {
        Ok(r) => r,
        Err(e) => {
            let mut s = reader.into_inner();
            let _ = reply(&mut s, &Reply::error(format!("bad request: {e}"))).await;
            return;
        }
    };
    match request {
        Request::Start => {
            let result = shared
                .prepared
                .lock()
                .map_err(|_| ShimFailure::other("shim state poisoned"))
                .and_then(|mut p| p.start(&shared.config));
            let mut result = result;
            if let Ok(started) = result.as_mut() {
                // Stdin and the terminal are reachable before anyone hears the process
                // runs, so input an attached client sends right after is not lost.
                if let Some(fd) = started.stdin.take() {
                    match AsyncPipe::new(fd) {
                        Ok(p) => *shared.stdin.lock().await = Some(p),
                        Err(e) => tracing::warn!("stdin: {e}"),
                    }
                }
                if let Ok(mut c) = shared.console.lock() {
                    *c = started.console.take();
                }
            }
            let answer = match &result {
                Ok(s) => Reply {
                    pid: Some(s.pid),
                    error: None,
                },
                Err(f) => Reply {
                    pid: None,
                    error: Some(f.clone()),
                },
            };
            shared.started.send_replace(true);
            if let Some(tx) = shared.started_tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(result);
            }
            let mut s = reader.into_inner();
            let _ = reply(&mut s, &answer).await;
        }
        Request::Wait => {
            let mut rx = shared.exit.subscribe();
            let status = rx
                .wait_for(|s| s.is_some())
                .await
                .ok()
                .and_then(|s| s.clone());
            let mut s = reader.into_inner();
            if let Some(status) = status {
                if let Ok(mut line) = serde_json::to_vec(&status) {
                    line.push(b'\n');
                    let _ = s.write_all(&line).await;
                }
            }
        }
        Request::Resize { height, width } => {
            let answer = match resize(&shared, height, width) {
                Ok(()) => Reply::default(),
                Err(e) => Reply::error(e),
            };
            let mut s = reader.into_inner();
            let _ = reply(&mut s, &answer).await;
        }
        Request::Attach {
            stdin,
            stdout,
            stderr,
        } => attach(shared, reader, stdin, stdout, stderr).await,
    }
}

fn resize(shared: &Shared, height: u16, width: u16) -> Result<(), String> {
    let console = shared.console.lock().map_err(|_| "shim state poisoned")?;
    let Some(fd) = console.as_ref() else {
        return Err("the process has no terminal".into());
    };
    vmrun_shim::set_window_size(fd, height, width).map_err(|e| format!("resizing: {e}"))
}

async fn attach(
    shared: Arc<Shared>,
    reader: BufReader<UnixStream>,
    want_stdin: bool,
    want_stdout: bool,
    want_stderr: bool,
) {
    let rx = shared
        .output
        .lock()
        .ok()
        .and_then(|o| o.as_ref().map(|t| t.subscribe()));
    // Bytes the client sent after its request line are stdin too.
    let buffered = reader.buffer().to_vec();
    let mut stream = reader.into_inner();
    if reply(&mut stream, &Reply::default()).await.is_err() {
        return;
    }
    let (mut rd, mut wr) = stream.into_split();
    let tty = shared.config.tty;

    let stdin_task = want_stdin.then(|| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            let mut pending = buffered;
            // Clients attach before the start: hold their input until stdin exists.
            let _ = shared.started.subscribe().wait_for(|s| *s).await;
            loop {
                if !pending.is_empty() {
                    let guard = shared.stdin.lock().await;
                    let Some(pipe) = guard.as_ref() else { break };
                    if pipe.write_all(&pending).await.is_err() {
                        break;
                    }
                    pending.clear();
                }
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
            }
            if shared.config.stdin_once {
                *shared.stdin.lock().await = None;
            }
        })
    });

    if let Some(mut rx) = rx {
        let mut out = Vec::with_capacity(64 * 1024);
        loop {
            match rx.recv().await {
                Ok((s, data)) => {
                    let wanted = match s {
                        Stream::Stdout => want_stdout,
                        Stream::Stderr => want_stderr,
                        Stream::Stdin => false,
                    };
                    if !wanted {
                        continue;
                    }
                    out.clear();
                    if tty {
                        out.extend_from_slice(&data);
                    } else {
                        frame::encode(s, &data, &mut out);
                    }
                    if wr.write_all(&out).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("an attached client missed {n} output chunks");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
    let _ = wr.shutdown().await;
    if let Some(t) = stdin_task {
        t.abort();
    }
}
