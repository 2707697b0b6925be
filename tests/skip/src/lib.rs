//! Visible test skips. `cargo test` hides a passing test's output, so a test that returns
//! early because something is missing would show as `ok`. A skipping test calls
//! [`report`] (or the [`skip!`] macro, which also returns): the reason goes to stderr and,
//! when `$VMRUN_TEST_SKIP_LOG` names a file, one line `BINARY TEST<TAB>REASON` is appended to
//! it. `tests/run.sh` sets that variable, lists the skipped tests with their reasons at the
//! end, and counts them apart from the passed ones (`N passed, N failed, N skipped`).

use std::fmt;
use std::io::Write;

/// The environment variable naming the skip log.
pub const SKIP_LOG_ENV: &str = "VMRUN_TEST_SKIP_LOG";

/// Why a test cannot run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

impl Skip {
    /// A skip with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Skip(reason.into())
    }

    /// Reports this skip for the current test (see [`report`]).
    pub fn report(&self) {
        report(&self.0);
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skip {}

/// The current test's name: libtest runs each test on a thread named after it.
pub fn current_test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string()
}

/// The current test binary's name without cargo's hash suffix (`full_boot`, `vmrun_vm`).
pub fn current_binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "<unknown binary>".into());
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            name.to_string()
        }
        _ => stem,
    }
}

/// Reports that the current test skips, and why: on stderr, and in the skip log.
pub fn report(reason: impl fmt::Display) {
    let test = current_test_name();
    let reason = reason.to_string().replace(['\n', '\t'], " ");
    eprintln!("SKIPPED {test}: {reason}");
    let Some(path) = std::env::var_os(SKIP_LOG_ENV) else {
        return;
    };
    let line = format!("{} {test}\t{reason}\n", current_binary_name());
    // One write of a short line to an O_APPEND file: lines from parallel tests do not mix.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "cannot append to {SKIP_LOG_ENV}={}: {e}",
            path.to_string_lossy()
        );
    }
}

/// Reports a skip (format arguments as for `format!`) and returns from the test.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => {{
        $crate::report(format_args!($($arg)*));
        return;
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_name_is_the_thread_name() {
        assert!(current_test_name().ends_with("the_test_name_is_the_thread_name"));
    }

    #[test]
    fn binary_name_drops_the_cargo_hash() {
        assert!(
            !current_binary_name().contains('-'),
            "{}",
            current_binary_name()
        );
    }
}
