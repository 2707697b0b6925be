//! `GET /containers/{id}/logs`: reading json-file logs, optionally following them.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use vmrun_shim::frame::{self, Stream as StdStream};
use vmrun_shim::log_cursor::{read_since, rotated_files, LogCursor};
use vmrun_shim::logfile::LogRecord;

use super::{Engine, EngineError};

/// Options of a logs request.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Keep streaming new output until the container stops.
    pub follow: bool,
    /// Only the last N lines (`None` = all).
    pub tail: Option<usize>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Only records at or after this Unix time.
    pub since: Option<f64>,
    /// Only records before this Unix time.
    pub until: Option<f64>,
}

/// Parse `?tail=` (`all` or a number).
pub fn parse_tail(s: Option<&str>) -> Result<Option<usize>, EngineError> {
    match s {
        None | Some("") | Some("all") => Ok(None),
        Some(n) => n
            .parse::<i64>()
            .map(|n| if n < 0 { None } else { Some(n as usize) })
            .map_err(|_| EngineError::bad_request(format!("invalid value for \"tail\": {n}"))),
    }
}

fn unix_time(rfc3339: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
}

pub(super) struct Renderer {
    pub(super) opts: LogOptions,
    tty: bool,
}

impl Renderer {
    fn wanted(&self, rec: &LogRecord) -> bool {
        let stream_ok = match rec.stream() {
            StdStream::Stderr => self.opts.stderr,
            _ => self.opts.stdout,
        };
        if !stream_ok {
            return false;
        }
        if self.opts.since.is_some() || self.opts.until.is_some() {
            let t = unix_time(&rec.time).unwrap_or(0.0);
            if self.opts.since.is_some_and(|s| t < s) || self.opts.until.is_some_and(|u| t >= u) {
                return false;
            }
        }
        true
    }

    fn render(&self, rec: &LogRecord, out: &mut Vec<u8>) {
        let mut line = Vec::new();
        if self.opts.timestamps {
            line.extend_from_slice(rec.time.as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(rec.log.as_bytes());
        if self.tty {
            out.extend_from_slice(&line);
        } else {
            frame::encode(rec.stream(), &line, out);
        }
    }
}

/// Read whole lines that are complete from `reader`; returns records and keeps a partial
/// trailing line for next time.
fn read_complete(reader: &mut BufReader<std::fs::File>, partial: &mut String) -> Vec<LogRecord> {
    let mut out = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                partial.push_str(&line);
                if partial.ends_with('\n') {
                    if let Ok(rec) = serde_json::from_str::<LogRecord>(partial.trim_end()) {
                        out.push(rec);
                    }
                    partial.clear();
                }
            }
        }
    }
    out
}

impl Engine {
    /// A stream of log output (docker-framed unless the container has a terminal).
    pub fn container_logs(
        self: &Arc<Self>,
        key: &str,
        opts: LogOptions,
    ) -> Result<
        (
            bool,
            impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
        ),
        EngineError,
    > {
        let rec = self.container(key)?;
        if !opts.stdout && !opts.stderr {
            return Err(EngineError::bad_request(
                "You must choose at least one stream",
            ));
        }
        let tty = rec.tty();
        let path: PathBuf = self.container_files(&rec)?.log;
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
        let engine = self.clone();
        let id = rec.id.clone();
        let renderer = Arc::new(Renderer { opts, tty });
        // Subscribed before the log is read, so an exit meanwhile is seen.
        let events = self.events.subscribe();
        tokio::spawn(async move {
            let (p, r, t) = (path.clone(), renderer.clone(), tx.clone());
            let dumped = tokio::task::spawn_blocking(move || dump_log(&p, &r, &t)).await;
            let Ok(Some((offset, partial, ino))) = dumped else {
                return;
            };
            if renderer.opts.follow {
                let log = super::log_follow::Followed {
                    path,
                    offset,
                    partial,
                    ino,
                };
                super::log_follow::follow(engine, id, log, renderer, tx, events).await;
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok((tty, stream))
    }
}

/// Every wanted record of a whole (rotated) log file.
fn whole_file(path: &Path, renderer: &Renderer) -> Vec<LogRecord> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut partial = String::new();
    read_complete(&mut BufReader::new(f), &mut partial)
        .into_iter()
        .filter(|r| renderer.wanted(r))
        .collect()
}

/// The last `n` wanted records of the rotated files, newest file first.
fn rotated_tail(rotated: &[PathBuf], mut n: usize, renderer: &Renderer) -> Vec<LogRecord> {
    let mut out: Vec<LogRecord> = Vec::new();
    for p in rotated.iter().rev() {
        if n == 0 {
            break;
        }
        let Ok(mut f) = std::fs::File::open(p) else {
            continue;
        };
        if let Ok((mut records, _)) =
            super::log_tail::last_records(&mut f, n, |r| renderer.wanted(r))
        {
            n -= records.len();
            records.append(&mut out);
            out = records;
        }
    }
    out
}

/// Where following a log continues: the offset after the last complete line, a partial
/// line after it, and the inode of the file it is in.
type Resume = (u64, String, u64);

/// Sends the log as it is now, its rotated files (`<log>.N` … `<log>.1`) first; returns
/// where following continues, or `None` when the client went away.
fn dump_log(
    path: &Path,
    renderer: &Renderer,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Option<Resume> {
    let file = match std::fs::File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
            return None;
        }
    };
    let rotated = rotated_files(path);
    let mut offset = 0u64;
    let mut partial = String::new();
    let mut ino = 0u64;
    let mut records: Vec<LogRecord> = Vec::new();
    if let Some(mut f) = file {
        ino = f
            .metadata()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0);
        // `--tail N` reads the logs from their ends, not whole.
        match renderer.opts.tail {
            Some(n) => match super::log_tail::last_records(&mut f, n, |r| renderer.wanted(r)) {
                Ok((current, end)) => {
                    offset = end;
                    records = rotated_tail(&rotated, n - current.len(), renderer);
                    records.extend(current);
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return None;
                }
            },
            None => {
                for p in &rotated {
                    records.extend(whole_file(p, renderer));
                }
                let mut reader = BufReader::new(f);
                records.extend(
                    read_complete(&mut reader, &mut partial)
                        .into_iter()
                        .filter(|r| renderer.wanted(r)),
                );
                offset = reader.stream_position().unwrap_or(0);
            }
        }
    }
    let mut out = Vec::new();
    for r in &records {
        renderer.render(r, &mut out);
        if out.len() > 64 * 1024
            && tx
                .blocking_send(Ok(Bytes::from(std::mem::take(&mut out))))
                .is_err()
        {
            return None;
        }
    }
    if !out.is_empty() && tx.blocking_send(Ok(Bytes::from(out))).is_err() {
        return None;
    }
    Some((offset, partial, ino))
}

/// Renders what `path`'s file holds after `offset` into `out`; moves `offset` on.
fn read_from(
    path: &Path,
    offset: &mut u64,
    partial: &mut String,
    renderer: &Renderer,
    out: &mut Vec<u8>,
) {
    let Ok(mut f) = std::fs::File::open(path) else {
        return;
    };
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return;
    }
    let mut reader = BufReader::new(f);
    for r in read_complete(&mut reader, partial) {
        if renderer.wanted(&r) {
            renderer.render(&r, out);
        }
    }
    *offset = reader.stream_position().unwrap_or(*offset);
}

/// The output written to the log at `path` since `offset` in the file with inode `ino`,
/// rendered, wherever rotation moved that file ([`read_since`]).
pub(super) fn read_new(
    path: &Path,
    offset: &mut u64,
    partial: &mut String,
    ino: &mut u64,
    renderer: &Renderer,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cursor = LogCursor {
        ino: *ino,
        offset: *offset,
    };
    read_since(path, &mut cursor, |file, from| {
        if *from == 0 {
            // A file read from its start: a partial line of another one is no part of it.
            partial.clear();
        }
        read_from(file, from, partial, renderer, &mut out);
    });
    *ino = cursor.ino;
    *offset = cursor.offset;
    out
}
