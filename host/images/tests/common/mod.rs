//! Helpers shared by the integration tests: the busybox image from the
//! installer script, crafted images, and store snapshots.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod token;
pub use vmrun_test_registry::{pki, registry};

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Root is needed to unpack layers faithfully (ownership, whiteouts).
pub fn require_root() -> bool {
    if !is_root() {
        vmrun_test_skip::report(format_args!(
            "loading images needs root (layer ownership, device nodes, trusted xattrs)"
        ));
        return false;
    }
    true
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../installer/make-busybox-image.sh")
}

/// Builds busybox:latest with the installer script; `None` (and a reason printed) when it cannot.
pub fn make_busybox(dir: &Path, format: &str) -> Option<PathBuf> {
    if !Path::new("/bin/busybox").exists() {
        vmrun_test_skip::report(format_args!(
            "/bin/busybox is missing (apt-get install busybox-static)"
        ));
        return None;
    }
    let out = dir.join(format!("busybox-{format}.tar"));
    let status = Command::new("bash")
        .arg(script())
        .arg(&out)
        .arg("--format")
        .arg(format)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("running make-busybox-image.sh");
    assert!(status.success(), "make-busybox-image.sh failed");
    Some(out)
}

pub use vmrun_test_registry::sha256_hex;

/// Every path under the store root (but `tmp/` and `lock`) with its size and kind.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == "tmp" || rel == "lock" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            out.insert(rel, format!("{:?} {}", meta.file_type(), meta.len()));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A tar built from raw headers, so `..` and absolute names go in unchanged.
pub struct RawTar {
    builder: tar::Builder<Vec<u8>>,
}

impl RawTar {
    pub fn new() -> Self {
        RawTar {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    pub fn entry(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
        mode: u32,
    ) -> &mut Self {
        self.entry_owned(path, kind, link, data, mode, 0, 0)
    }

    /// Like [`RawTar::entry`], owned by `uid:gid`.
    #[allow(clippy::too_many_arguments)]
    pub fn entry_owned(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut header = raw_header(path, kind, link, data.len() as u64, mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    /// A device node (`Char`/`Block`) or FIFO with its device numbers, owned by root.
    pub fn device(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> &mut Self {
        let mut header = raw_header(path, kind, "", 0, mode);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        header.set_cksum();
        self.builder.append(&header, &b""[..]).unwrap();
        self
    }

    /// A PAX extended header (e.g. `SCHILY.xattr.user.x`) for the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.builder
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.entry(path, tar::EntryType::Regular, "", data, 0o644)
    }

    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.entry(path, tar::EntryType::Directory, "", b"", 0o755)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(path, tar::EntryType::Symlink, target, b"", 0o777)
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(path, tar::EntryType::Link, target, b"", 0o644)
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// A GNU header with the name and link name copied in verbatim (no checksum yet).
fn raw_header(path: &str, kind: tar::EntryType, link: &str, size: u64, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    {
        let old = header.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header
}

impl Default for RawTar {
    fn default() -> Self {
        Self::new()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn config_json(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": { "Env": ["PATH=/bin"], "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap()
}

/// How a layer is stored in a crafted archive.
#[derive(Clone, Copy)]
pub enum LayerForm {
    Plain,
    Gzip,
    Zstd,
}

impl LayerForm {
    /// The blob and its OCI media type.
    pub fn encode(self, layer: &[u8]) -> (Vec<u8>, &'static str) {
        match self {
            LayerForm::Plain => (layer.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
            LayerForm::Gzip => (gzip(layer), "application/vnd.oci.image.layer.v1.tar+gzip"),
            LayerForm::Zstd => (
                zstd::encode_all(layer, 3).unwrap(),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        }
    }
}

/// An OCI layout tar with one image named `name`, whose layers are the given
/// uncompressed tars (gzipped in the archive).
pub fn oci_layout(name: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let forms: Vec<(Vec<u8>, LayerForm)> = layers
        .iter()
        .map(|l| (l.clone(), LayerForm::Gzip))
        .collect();
    oci_layout_with(name, &forms)
}

/// An OCI layout tar with one image named `name`, each layer stored in the given form.
pub fn oci_layout_with(name: &str, layers: &[(Vec<u8>, LayerForm)]) -> Vec<u8> {
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (layer, form) in layers {
        diff_ids.push(format!("sha256:{}", sha256_hex(layer)));
        let (blob, media_type) = form.encode(layer);
        let digest = sha256_hex(&blob);
        layer_descs.push(serde_json::json!({
            "mediaType": media_type,
            "digest": format!("sha256:{digest}"),
            "size": blob.len(),
        }));
        blobs.push((digest, blob));
    }
    let config = config_json(&diff_ids);
    let config_digest = sha256_hex(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"),
            "size": config.len(),
        },
        "layers": layer_descs,
    }))
    .unwrap();
    let manifest_digest = sha256_hex(&manifest);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": name },
        }],
    }))
    .unwrap();
    blobs.push((config_digest, config));
    blobs.push((manifest_digest, manifest));
    let mut files = vec![
        (
            "oci-layout".to_owned(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".to_owned(), index),
    ];
    for (digest, data) in blobs {
        files.push((format!("blobs/sha256/{digest}"), data));
    }
    plain_tar(&files)
}

/// A tar of regular files.
pub fn plain_tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Reads all files of a tar.
pub fn read_tar(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            out.push((path, data));
        }
    }
    out
}
