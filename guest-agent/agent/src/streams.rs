//! Stream connections ([`StreamTarget`]): after `StreamReady` the connection carries raw
//! bytes. Attach splices the connection onto the shim's attach socket; logs sends the
//! json-file log and, when following, what is appended until the container has exited.

use std::io::SeekFrom;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use vmrun_agent_protocol::AgentError;
use vmrun_shim::log_cursor::{read_since, LogCursor};

use crate::procs::Entry;
use crate::shim_client;

/// How often a followed log is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Connects to the shim for an attach; returns the shim side and bytes it already sent.
pub async fn open_attach(
    e: &Entry,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> Result<(tokio::net::UnixStream, Vec<u8>), AgentError> {
    shim_client::attach(e.socket(), stdin, stdout, stderr).await
}

/// Moves bytes both ways until the shim ends the output, then closes the whole connection:
/// the host sees the end of the attach even where half-closes do not cross (vsock through
/// `vhost-device-vsock` only forwards full closes). The host's end of input (a half-close)
/// is passed on to the shim, which closes the process's stdin.
pub async fn splice<S>(host: &mut S, shim: tokio::net::UnixStream, early: Vec<u8>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if host.write_all(&early).await.is_err() {
        return;
    }
    let (mut host_rd, mut host_wr) = tokio::io::split(host);
    let (mut shim_rd, mut shim_wr) = shim.into_split();
    let output = async {
        if let Err(e) = tokio::io::copy(&mut shim_rd, &mut host_wr).await {
            tracing::debug!("attach output ended: {e}");
        }
        let _ = host_wr.shutdown().await;
    };
    let input = async {
        if tokio::io::copy(&mut host_rd, &mut shim_wr).await.is_ok() {
            let _ = shim_wr.shutdown().await;
        }
        // Input is done; the attach lasts as long as the output.
        std::future::pending::<()>().await
    };
    tokio::select! {
        () = output => {}
        () = input => {}
    }
}

/// Sends the log from the start; with `follow`, keeps sending until the entry has exited
/// and everything written is sent, or the host goes away. A log that rotates
/// (`CreateContainer::log_rotation`) is followed across rotations: the rest of the file
/// being read wherever it went, then the newer ones ([`read_since`]).
pub async fn send_log<S>(host: &mut S, path: &std::path::Path, follow: bool, e: &Entry)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut cursor = LogCursor::default();
    loop {
        let exited_before = e.exited();
        // Read on the blocking pool, a chunk at a time through a bounded channel: a
        // rotated file may be large, and the host may be slow.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let log = path.to_path_buf();
        let reader = tokio::task::spawn_blocking(move || {
            read_since(&log, &mut cursor, |file, offset| {
                send_from(file, offset, &tx);
            });
            cursor
        });
        while let Some(chunk) = rx.recv().await {
            if host.write_all(&chunk).await.is_err() {
                reader.abort();
                return;
            }
        }
        match reader.await {
            Ok(next) => cursor = next,
            Err(_) => return,
        }
        // Everything written before the exit has been sent.
        if !follow || exited_before {
            break;
        }
        // Wait for more, and notice a host that hung up meanwhile.
        let mut probe = [0u8; 512];
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_POLL) => {}
            r = host.read(&mut probe) => if matches!(r, Ok(0) | Err(_)) { return },
        }
    }
    let _ = host.shutdown().await;
}

/// Sends `file` from `offset` to its end in chunks, advancing `offset` by what was sent;
/// stops early when the receiver is gone.
fn send_from(file: &std::path::Path, offset: &mut u64, tx: &tokio::sync::mpsc::Sender<Vec<u8>>) {
    use std::io::{Read, Seek};
    let Ok(mut f) = std::fs::File::open(file) else {
        return;
    };
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return;
    }
    loop {
        let mut chunk = vec![0u8; 64 * 1024];
        match f.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                chunk.truncate(n);
                if tx.blocking_send(chunk).is_err() {
                    return;
                }
                *offset += n as u64;
            }
        }
    }
}
