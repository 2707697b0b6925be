//! What the tests need from the host: root, tools, the binaries under test.

use std::path::{Path, PathBuf};

/// The binaries the harness runs.
pub const BINARIES: [&str; 3] = ["vmrund", "vmrun-shim", "vmrun"];

/// True when running as root; otherwise prints `skipping: ...` and returns false.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        vmrun_test_skip::report(format_args!(
            "the e2e tests need root (namespaces, cgroups, mounts)"
        ));
        false
    }
}

/// Whether `tool` is an executable in `PATH`.
pub fn has_tool(tool: &str) -> bool {
    which(tool).is_some()
}

/// True when `tool` is in `PATH`; otherwise prints `skipping: ...` and returns false.
pub fn require_tool(tool: &str) -> bool {
    if has_tool(tool) {
        true
    } else {
        vmrun_test_skip::report(format_args!("`{tool}` is not installed"));
        false
    }
}

/// Full path of `tool` in `PATH`.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Directory holding `vmrund`, `vmrun-shim` and `vmrun`: `VMRUN_BIN_DIR`, else the
/// target directory of this test executable (`target/debug/deps/..`). Panics with
/// instructions when a binary is missing.
pub fn bin_dir() -> PathBuf {
    let dir = match std::env::var_os("VMRUN_BIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let exe = std::env::current_exe().expect("current_exe");
            let deps = exe.parent().expect("test executable has a directory");
            // target/debug/deps/test-xxxx -> target/debug
            if deps.file_name().is_some_and(|n| n == "deps") {
                deps.parent().expect("deps has a parent").to_path_buf()
            } else {
                deps.to_path_buf()
            }
        }
    };
    let missing: Vec<&str> = BINARIES
        .iter()
        .copied()
        .filter(|b| !is_executable(&dir.join(b)))
        .collect();
    if !missing.is_empty() {
        panic!(
            "missing {} in {}: build the binaries first with the same target dir, \
             e.g. `cargo build --workspace --bins` (tests/e2e/run.sh does it), \
             or set VMRUN_BIN_DIR",
            missing.join(", "),
            dir.display()
        );
    }
    dir
}
