//! The JSON-lines stream `docker build` renders: `{"stream": ...}` text,
//! `{"aux": {"ID": ...}}` for the built image, `{"errorDetail": ..., "error": ...}`.

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Where a build writes its progress; cheap to clone.
#[derive(Clone)]
pub struct Progress {
    tx: mpsc::UnboundedSender<Bytes>,
    quiet: bool,
}

fn line(value: &Value) -> Bytes {
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

impl Progress {
    /// A writer and the receiving end the HTTP response streams from. `quiet` (`-q`)
    /// drops the step text.
    pub fn new(quiet: bool) -> (Progress, mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Progress { tx, quiet }, rx)
    }

    /// Whether the client went away (the response stream was dropped).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Step text (`Step 1/3 : FROM busybox\n`), unless quiet.
    pub fn say(&self, text: impl Into<String>) {
        if !self.quiet {
            self.text(text);
        }
    }

    /// Text written even when quiet (the `-q` image id).
    pub fn text(&self, text: impl Into<String>) {
        let _ = self.tx.send(line(&json!({ "stream": text.into() })));
    }

    /// The built image's id (`docker build --iidfile` and `-q` read it).
    pub fn aux_id(&self, id: &str) {
        let _ = self.tx.send(line(&json!({ "aux": { "ID": id } })));
    }

    /// The build failed: docker's CLI prints `message` and exits with `code` (1 when 0).
    pub fn error(&self, message: &str, code: i64) {
        let mut detail = json!({ "message": message });
        if code != 0 {
            detail["code"] = json!(code);
        }
        let _ = self
            .tx
            .send(line(&json!({ "errorDetail": detail, "error": message })));
    }
}
