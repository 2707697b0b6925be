//! End-to-end tests through the vmrun CLI, the Docker API and the docker CLI.
//!
//! The harness starts a private `vmrund` per test ([`Daemon::start`]) on a short
//! temporary directory, loads the reproducible busybox image into it, and gives
//! the test three ways to talk to it: our CLI ([`Daemon::vmrun`]), the real docker
//! CLI ([`Daemon::docker`]) and raw HTTP ([`Daemon::api`]). Dropping the daemon
//! removes every container and network it made, stops it, kills what is left of
//! its shims and containers, unmounts and deletes its directory.
//!
//! One daemon runs at a time per lane: [`Daemon::start`] takes an exclusive `flock` on
//! the lane's lock file ([`GLOBAL_LOCK`], or the one `VMRUN_E2E_LOCK` names), which
//! serializes tests across threads, test binaries and nextest processes. `tests/run.sh`
//! runs the VM tests in a second lane beside the others; lanes share nothing fixed.
//!
//! Binaries are found through `VMRUN_BIN_DIR`, else in the target directory of the
//! test executable (`target/debug/`); build them first with `tests/run.sh` or
//! `cargo build -p vmrun-daemon -p vmrun-shim -p vmrun`.

pub mod cleanup;
pub mod command;
pub mod compose;
pub mod cp;
pub mod cri;
pub mod daemon;
pub mod dbus;
pub mod env;
pub mod http;
pub mod image;
pub mod log_rotation;
pub mod netecho;
pub mod oci;
pub mod reference;
pub mod terminal;
pub mod ui;
pub mod vm;
pub mod volume_fill;

pub use command::{run_with_timeout, CmdOutput};
pub use daemon::{Daemon, DaemonOptions, GLOBAL_LOCK};
pub use env::{bin_dir, has_tool, require_root, require_tool};
pub use http::{api_request, try_api_request, ApiResponse, PendingResponse};
pub use image::{busybox_docker_tar, busybox_tar};
pub use reference::ReferenceDaemon;

use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until process `pid` is gone (or a zombie waiting for its reaper), or panics with
/// `what` after `timeout`.
pub fn wait_process_gone(pid: impl std::fmt::Display, timeout: Duration, what: &str) {
    wait_for(timeout, what, || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        (stat.is_empty() || stat.contains(") Z ")).then_some(())
    })
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}
