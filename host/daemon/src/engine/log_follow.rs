//! `docker logs -f`: new log output sent as it is written, woken by inotify on the log
//! file (or, where that cannot be set up, a short timer) and by the container's exit
//! event, on the async runtime: no thread per follower, no fixed polling. Each read of
//! the new bytes runs on the blocking pool; a rotated log is read to its end and the
//! new file followed (and watched) from its start.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustix::fs::inotify;
use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, mpsc};

use super::logs::{read_new, Renderer};
use super::{Engine, Event};

/// Where following resumes in a log.
pub(super) struct Followed {
    /// The json-file log.
    pub path: PathBuf,
    /// The offset after the last complete line sent.
    pub offset: u64,
    /// A partial line read after it.
    pub partial: String,
    /// The inode of the file the offset is in (0: none yet); another one at the path
    /// means the log was rotated.
    pub ino: u64,
}

/// How long a follower sleeps between looks when the log cannot be watched, and at most
/// when it can (a safety net for a missed notification).
const POLL: Duration = Duration::from_millis(250);
const SAFETY: Duration = Duration::from_secs(5);

/// An inotify watch on the log's changes, when one can be set up.
fn watch(path: &std::path::Path) -> Option<AsyncFd<OwnedFd>> {
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
    let flags = inotify::WatchFlags::MODIFY
        | inotify::WatchFlags::CLOSE_WRITE
        | inotify::WatchFlags::DELETE_SELF
        | inotify::WatchFlags::MOVE_SELF;
    inotify::add_watch(&fd, path, flags).ok()?;
    // SAFETY: `fd` is an open inotify descriptor that the `AsyncFd` owns from here on;
    // an `OwnedFd` always returns the same descriptor, closed only when it is dropped.
    unsafe { AsyncFd::register(fd) }.ok()
}

/// Waits until the watched log changed (or a moment passed, without a watch).
async fn changed(watch: Option<&AsyncFd<OwnedFd>>) {
    let Some(fd) = watch else {
        tokio::time::sleep(POLL).await;
        return;
    };
    let Ok(mut ready) = fd.readable().await else {
        tokio::time::sleep(POLL).await;
        return;
    };
    // The events themselves do not matter: drain them.
    let mut buf = [0u8; 4096];
    while rustix::io::read(fd.get_ref(), &mut buf).is_ok_and(|n| n > 0) {}
    ready.clear_ready();
}

/// Waits for container `id`'s exit; returns at once when the event bus closes.
async fn died(events: &mut broadcast::Receiver<Event>, id: &str) {
    loop {
        match events.recv().await {
            Ok(ev) if ev.actor.id == id && ev.action == "die" => return,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sends what is written to the log until the container stops or the client leaves.
pub(super) async fn follow(
    engine: Arc<Engine>,
    id: String,
    mut log: Followed,
    renderer: Arc<Renderer>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    mut events: broadcast::Receiver<Event>,
) {
    let mut watched = log.ino;
    let mut watcher = watch(&log.path);
    loop {
        let running = engine
            .container(&id)
            .map(|r| r.is_running())
            .unwrap_or(false);
        let r = renderer.clone();
        let read = tokio::task::spawn_blocking(move || {
            let out = read_new(
                &log.path,
                &mut log.offset,
                &mut log.partial,
                &mut log.ino,
                &r,
            );
            (out, log)
        })
        .await;
        let Ok((out, next)) = read else {
            return;
        };
        log = next;
        if log.ino != watched {
            // Rotated: watch the new file.
            watched = log.ino;
            watcher = watch(&log.path);
        }
        if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
            return;
        }
        if !running {
            return;
        }
        tokio::select! {
            () = changed(watcher.as_ref()) => {}
            () = died(&mut events, &id) => {}
            () = tx.closed() => return,
            () = tokio::time::sleep(SAFETY) => {}
        }
    }
}
