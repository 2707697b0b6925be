//! `netecho` (`tests/e2e/fixtures/netecho.rs`): TCP and UDP test servers to copy into a
//! container, since the busybox image's `nc` has no UDP. Compiled once, statically (the
//! image has no C library), with the `rustc` next to `cargo`, and cached in `/tmp` by the
//! source's content.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use vmrun_test_skip::Skip;

use crate::vm::VM_COMMAND_TIMEOUT;
use crate::{run_with_timeout, Daemon};

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/netecho.rs")
}

/// The static binary, built if missing.
pub fn binary() -> Result<PathBuf, Skip> {
    static BUILT: OnceLock<Result<PathBuf, Skip>> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> Result<PathBuf, Skip> {
    let src = source();
    let text = std::fs::read(&src).map_err(|e| Skip(format!("{}: {e}", src.display())))?;
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    let out = PathBuf::from(format!("/tmp/vmrun-e2e-netecho-{:016x}", h.finish()));
    if out.is_file() {
        return Ok(out);
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let private = out.with_extension(format!("tmp{}", std::process::id()));
    let built = Command::new(rustc)
        .args(["--edition", "2021", "-O", "-C", "strip=symbols"])
        .args(["-C", "target-feature=+crt-static", "-o"])
        .arg(&private)
        .arg(&src)
        .output()
        .map_err(|e| Skip(format!("running rustc for netecho: {e}")))?;
    if !built.status.success() {
        return Err(Skip(format!(
            "compiling netecho: {}",
            String::from_utf8_lossy(&built.stderr)
        )));
    }
    std::fs::rename(&private, &out).map_err(|e| Skip(format!("{}: {e}", out.display())))?;
    Ok(out)
}

/// Copies netecho into running container `name` as `/bin/netecho` (through `docker exec`,
/// so it works for containers in VMs too); it appears whole, so a container may wait for
/// it with `until [ -x /bin/netecho ]`.
pub fn install(d: &Daemon, name: &str) -> Result<(), Skip> {
    let bin = std::fs::read(binary()?).map_err(|e| Skip(e.to_string()))?;
    let cmd = d.docker_cmd(&[
        "exec",
        "-i",
        name,
        "sh",
        "-c",
        "cat > /bin/netecho.part && chmod 755 /bin/netecho.part && mv /bin/netecho.part /bin/netecho",
    ]);
    run_with_timeout(cmd, Some(&bin), VM_COMMAND_TIMEOUT).ok();
    Ok(())
}
