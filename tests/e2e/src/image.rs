//! The busybox image the tests run: built once by `installer/make-busybox-image.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the built image is cached between test processes.
pub const BUSYBOX_TAR: &str = "/tmp/vmrun-e2e-busybox.tar";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../installer/make-busybox-image.sh")
}

fn is_fresh(tar: &Path, script: &Path) -> bool {
    let (Ok(t), Ok(s)) = (tar.metadata(), script.metadata()) else {
        return false;
    };
    match (t.modified(), s.modified()) {
        (Ok(t_mod), Ok(s_mod)) => t.len() > 0 && t_mod >= s_mod,
        _ => false,
    }
}

/// Where the docker-archive form of the image is cached (for dockerd 20.10's `docker load`).
pub const BUSYBOX_DOCKER_TAR: &str = "/tmp/vmrun-e2e-busybox-docker.tar";

/// Path of an OCI image tar holding `busybox:latest`, built if missing or older than the
/// script. Concurrent builders write private files and rename them into place.
/// `VMRUN_E2E_BUSYBOX_TAR` names one built elsewhere (a test re-run inside the nested KVM
/// host, which has no build script).
pub fn busybox_tar() -> PathBuf {
    if let Some(tar) = std::env::var_os("VMRUN_E2E_BUSYBOX_TAR") {
        return PathBuf::from(tar);
    }
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| built(BUSYBOX_TAR, "oci")).clone()
}

/// The same image as a docker-archive (`manifest.json`), which dockerd 20.10 loads.
pub fn busybox_docker_tar() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| built(BUSYBOX_DOCKER_TAR, "docker"))
        .clone()
}

fn built(path: &str, format: &str) -> PathBuf {
    let tar = PathBuf::from(path);
    let script = script();
    if is_fresh(&tar, &script) {
        return tar;
    }
    let tmp = PathBuf::from(format!("{path}.{}.tmp", std::process::id()));
    let out = Command::new("bash")
        .arg(&script)
        .arg(&tmp)
        .args(["--format", format])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &tar)
        .unwrap_or_else(|e| panic!("renaming {} to {}: {e}", tmp.display(), tar.display()));
    tar
}
