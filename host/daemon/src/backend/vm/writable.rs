//! A VM container's writable layer on this host, for `commit` and build steps: the
//! agent sends the upper directory as a tar in overlayfs form
//! ([`StreamTarget::DataTar`]) and the image store's layer unpacker (the one that unpacks
//! pulled layers, with its path confinement) writes it into a temporary directory; or,
//! for a per-container VM that is not running, its data disk is mounted read-only on the
//! host. Either way the result is the same directory form the native backend hands over.

use std::path::{Path, PathBuf};
use std::process::Command;

use vmrun_agent_protocol::{StreamTarget, DATA_TAR_END};

use super::machine::{agent_error, Machine};
use crate::backend::{BackendError, WritableLayer};

fn failed(what: &str) -> impl Fn(std::io::Error) -> BackendError + '_ {
    move |e| BackendError::Failed(format!("{what}: {e}"))
}

/// A fresh temporary directory under `tmp_root` (made if missing).
fn temp_dir(tmp_root: &Path, prefix: &str) -> Result<tempfile::TempDir, BackendError> {
    std::fs::create_dir_all(tmp_root).map_err(failed("creating a temporary directory"))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(tmp_root)
        .map_err(failed("creating a temporary directory"))
}

/// Copies directory `rel` of the guest's data disk (a container's upper directory) into
/// a temporary directory under `tmp_root`.
pub async fn fetch(
    machine: &Machine,
    rel: PathBuf,
    tmp_root: &Path,
) -> Result<WritableLayer, BackendError> {
    let stream = machine
        .agent()
        .open_stream(StreamTarget::DataTar { path: rel.clone() })
        .await
        .map_err(|e| agent_error("reading the writable layer", e))?;
    let dir = temp_dir(tmp_root, "vm-layer-")?;
    let dest = dir.path().to_owned();
    let unpacked = tokio::task::spawn_blocking(move || {
        let mut reader = tokio_util::io::SyncIoBridge::new(stream);
        let stats = vmrun_images::unpack::unpack_layer(
            &mut reader,
            &dest,
            vmrun_images::unpack::UnpackOptions::default(),
        );
        let mut rest = Vec::new();
        let ended = std::io::Read::read_to_end(&mut reader, &mut rest);
        (stats, ended.map(|_| rest))
    })
    .await
    .map_err(|e| BackendError::Failed(format!("unpacking the writable layer: {e}")))?;
    match unpacked {
        (Err(e), _) => Err(BackendError::Failed(format!(
            "unpacking the writable layer from the VM: {e}"
        ))),
        (Ok(_), Ok(rest)) if rest.ends_with(DATA_TAR_END) => {
            Ok(WritableLayer::kept_by(dir.path().to_owned(), dir))
        }
        (Ok(_), _) => Err(BackendError::Failed(format!(
            "the writable layer {} came from the VM incomplete",
            rel.display()
        ))),
    }
}

/// `docker diff` of a container in a VM: its writable layer `layer` (a copy on this
/// host) over its image's `layers`.
pub async fn changes(
    layer: Option<WritableLayer>,
    layers: Vec<PathBuf>,
) -> Result<Vec<crate::backend::Change>, BackendError> {
    let Some(layer) = layer else {
        return Ok(Vec::new());
    };
    tokio::task::spawn_blocking(move || crate::backend::changes::changes(&layer.path, &layers))
        .await
        .map_err(|e| BackendError::Failed(format!("reading the container's changes: {e}")))?
        .map_err(|e| BackendError::Failed(format!("reading the container's changes: {e}")))
}

/// An empty writable layer (a container that never ran).
pub fn empty(tmp_root: &Path) -> Result<WritableLayer, BackendError> {
    let dir = temp_dir(tmp_root, "vm-layer-")?;
    Ok(WritableLayer::kept_by(dir.path().to_owned(), dir))
}

/// A read-only mount of a stopped container VM's data disk; unmounted when dropped.
struct DiskMount(tempfile::TempDir);

impl Drop for DiskMount {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(self.0.path(), nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!("unmounting {}: {e}", self.0.path().display());
        }
    }
}

/// Directory `sub` of the ext4 data disk `disk` (its VM is not running), mounted
/// read-only on the host (`mount -o loop,ro,noload`: nothing is written to it).
pub fn mount_stopped(
    disk: &Path,
    sub: &str,
    tmp_root: &Path,
) -> Result<WritableLayer, BackendError> {
    if !disk.exists() {
        return empty(tmp_root);
    }
    let dir = temp_dir(tmp_root, "vm-disk-")?;
    let out = Command::new("mount")
        .args(["-t", "ext4", "-o", "loop,ro,noload"])
        .arg(disk)
        .arg(dir.path())
        .output()
        .map_err(failed("running mount"))?;
    if !out.status.success() {
        return Err(BackendError::Failed(format!(
            "mounting {} read-only: {}",
            disk.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let path = dir.path().join(sub);
    let mount = DiskMount(dir);
    if !path.is_dir() {
        return empty(tmp_root);
    }
    Ok(WritableLayer::kept_by(path, mount))
}
