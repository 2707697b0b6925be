//! `--log` / `--log-format`: errors and the library's warnings go to the log
//! file (appended) when one is given, else to stderr.
//!
//! With `--log-format json` every line is one JSON object
//! `{"level":"error","msg":"...","time":"RFC 3339"}`, the shape runc's
//! logrus writes and containerd's shim decodes to report "OCI runtime create
//! failed: <msg>". Nothing else may go into that file, so the library's
//! `tracing` output is wrapped into the same objects, one per event.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

use crate::cli::{Cli, LogFormat};

/// Where errors are logged besides stderr.
pub(crate) struct Logger {
    file: Option<Arc<Mutex<File>>>,
    format: LogFormat,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// One log line in `format`.
fn line(format: LogFormat, level: &str, msg: &str) -> String {
    match format {
        LogFormat::Json => {
            let value = serde_json::json!({ "level": level, "msg": msg, "time": now() });
            format!("{value}\n")
        }
        LogFormat::Text => format!("time={:?} level={level} msg={msg:?}\n", now()),
    }
}

impl Logger {
    /// Logs an error to the log file (stderr is the caller's business).
    pub(crate) fn error(&self, msg: &str) {
        if let Some(file) = &self.file {
            if let Ok(mut file) = file.lock() {
                let _ = file.write_all(line(self.format, "error", msg).as_bytes());
            }
        }
    }
}

/// Opens the log file and installs the `tracing` subscriber (level from
/// `VMRUN_LOG`, else `debug` with `--debug`, else `warn`).
pub(crate) fn init(cli: &Cli) -> Logger {
    let file = cli.log.as_ref().and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| eprintln!("vmrun-runtime: opening log {}: {e}", path.display()))
            .ok()
            .map(|f| Arc::new(Mutex::new(f)))
    });
    let default_level = if cli.debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VMRUN_LOG")
        .unwrap_or_else(|_| default_level.into());
    match &file {
        Some(file) => {
            let writer = EventWriter {
                file: file.clone(),
                format: cli.log_format,
            };
            tracing_subscriber::fmt()
                .with_writer(writer)
                .with_ansi(false)
                .without_time()
                .with_target(false)
                .with_env_filter(filter)
                .init();
        }
        None => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(filter)
                .init();
        }
    }
    Logger {
        file,
        format: cli.log_format,
    }
}

/// Makes one [`EventBuffer`] per `tracing` event.
#[derive(Clone)]
struct EventWriter {
    file: Arc<Mutex<File>>,
    format: LogFormat,
}

impl<'a> MakeWriter<'a> for EventWriter {
    type Writer = EventBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        EventBuffer {
            buf: Vec::new(),
            file: self.file.clone(),
            format: self.format,
        }
    }
}

/// Collects one formatted event and writes it as one log line when dropped.
struct EventBuffer {
    buf: Vec<u8>,
    file: Arc<Mutex<File>>,
    format: LogFormat,
}

impl Write for EventBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        // The formatter starts the line with the level ("WARN message").
        let (level, msg) = match text.split_once(char::is_whitespace) {
            Some((level, msg)) => (level.to_ascii_lowercase(), msg.trim()),
            None => ("info".to_owned(), text),
        };
        let level = match level.as_str() {
            "warn" => "warning".to_owned(),
            other => other.to_owned(),
        };
        if let Ok(mut file) = self.file.lock() {
            let _ = file.write_all(line(self.format, &level, msg).as_bytes());
        }
    }
}
