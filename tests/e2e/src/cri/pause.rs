//! The pod sandbox ("pause") image the CRI plugin runs first in every pod, made here
//! without a registry: the harness's busybox OCI image with its command replaced by a
//! long `sleep` (a sandbox container must outlive its pod's containers). One OCI layout
//! tar for `ctr images import`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::image::busybox_tar;

/// The image's name, as the CRI plugin's `sandbox_image` names it.
pub const PAUSE_IMAGE: &str = "docker.io/library/vmrun-pause:latest";

/// Writes the image's tar under `dir` (a scratch directory of the caller's) and returns
/// its path.
pub fn pause_tar(dir: &Path) -> Result<PathBuf, String> {
    let layout = dir.join("pause-layout");
    std::fs::create_dir_all(&layout).map_err(|e| format!("creating {}: {e}", layout.display()))?;
    let busybox = busybox_tar();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&busybox)
        .arg("-C")
        .arg(&layout))?;
    let index: Value = read_json(&layout.join("index.json"))?;
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .ok_or("busybox's index.json names no manifest")?;
    let mut manifest = read_json(&blob_path(&layout, manifest_digest)?)?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or("busybox's manifest names no config")?;
    let mut config = read_json(&blob_path(&layout, config_digest)?)?;
    let cfg = config
        .get_mut("config")
        .and_then(Value::as_object_mut)
        .ok_or("busybox's image config has no `config`")?;
    cfg.remove("Entrypoint");
    cfg.insert("Cmd".into(), json!(["sleep", "2147483647"]));
    let (digest, size) = write_blob(&layout, &config)?;
    manifest["config"]["digest"] = digest.into();
    manifest["config"]["size"] = size.into();
    let (digest, size) = write_blob(&layout, &manifest)?;
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
            "annotations": {
                "io.containerd.image.name": PAUSE_IMAGE,
                "org.opencontainers.image.ref.name": "latest"
            }
        }]
    });
    std::fs::write(layout.join("index.json"), index.to_string())
        .map_err(|e| format!("writing index.json: {e}"))?;
    let tar = dir.join("pause.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&layout)
        .arg("."))?;
    Ok(tar)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("parsing {}: {e}", path.display()))
}

fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("not a sha256 digest: {digest}"))?;
    Ok(layout.join("blobs/sha256").join(hex))
}

/// Stores `value` as a blob: its digest and size.
fn write_blob(layout: &Path, value: &Value) -> Result<(String, usize), String> {
    let bytes = value.to_string().into_bytes();
    let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
    let path = blob_path(layout, &digest)?;
    std::fs::write(&path, &bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok((digest, bytes.len()))
}
