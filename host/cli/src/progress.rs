//! A progress bar for uploads (`vmrun load`): bytes sent so far, against the
//! total when it is known (a file), as a counter when it is not (a pipe).
//! Only drawn on a terminal; elsewhere output stays plain lines.

use std::io::IsTerminal;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar's layout when the total is known.
const BAR_TEMPLATE: &str =
    "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}";
/// The layout when the total is unknown (reading a pipe).
const COUNTER_TEMPLATE: &str = "{spinner} {msg} {binary_bytes} {binary_bytes_per_sec}";

/// Upload progress: a bar on a terminal, nothing otherwise.
#[derive(Debug, Clone)]
pub struct UploadProgress {
    bar: ProgressBar,
}

impl UploadProgress {
    /// Whether a bar should be drawn: not `quiet`, and stdout is a terminal.
    pub fn wanted(quiet: bool) -> bool {
        !quiet && std::io::stdout().is_terminal()
    }

    /// A bar drawn on stdout for `total` bytes (a counter when `None`).
    pub fn on_stdout(total: Option<u64>, message: &'static str) -> Self {
        Self::with_target(total, message, ProgressDrawTarget::stdout())
    }

    /// Tracks progress without drawing anything.
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
        }
    }

    fn with_target(total: Option<u64>, message: &'static str, target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(total, target);
        let template = if total.is_some() {
            BAR_TEMPLATE
        } else {
            COUNTER_TEMPLATE
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message);
        if total.is_none() {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Self { bar }
    }

    /// Bytes counted so far.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Wraps a body stream so that every chunk it yields moves the bar;
    /// once the known total is sent, the message becomes `done_message`.
    pub fn track<S, E>(
        &self,
        body: S,
        done_message: &'static str,
    ) -> impl Stream<Item = Result<Bytes, E>> + Send + 'static
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    {
        let bar = self.bar.clone();
        body.inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                bar.inc(bytes.len() as u64);
                if bar.length().is_some_and(|len| bar.position() >= len) {
                    bar.set_message(done_message);
                }
            }
        })
    }

    /// Prints `text` (which ends in a newline) above the bar, or plainly.
    pub fn print(&self, text: &str) {
        self.bar.suspend(|| crate::commands::print_text(text));
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_the_bytes_that_pass() {
        let progress = UploadProgress::hidden();
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"hello")),
            Ok(Bytes::from_static(b" world")),
            Err(std::io::Error::other("boom")),
        ];
        let tracked = progress.track(futures::stream::iter(chunks), "done");
        let seen: Vec<_> = tracked.collect().await;
        assert_eq!(seen.len(), 3);
        assert_eq!(progress.position(), 11);
        progress.finish();
    }

    #[test]
    fn styles_parse() {
        assert!(ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
        assert!(ProgressStyle::with_template(COUNTER_TEMPLATE).is_ok());
        // Building both kinds must not panic without a terminal.
        UploadProgress::with_target(Some(10), "x", ProgressDrawTarget::hidden()).finish();
        UploadProgress::with_target(None, "x", ProgressDrawTarget::hidden()).finish();
    }
}
