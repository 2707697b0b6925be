//! Crafted layers pushed into a real registry (Debian's `docker-registry`)
//! over the distribution API and pulled with `ImageStore::pull`: malicious
//! entries are refused with nothing written, and whiteouts, opaque
//! directories, hard links, ownership, modes, xattrs, zstd and device nodes
//! come out of a pull as the unpacker documents.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{Auth, Registry};
use common::{LayerForm, RawTar};
use tar::EntryType;
use vmrun_images::unpack::UnpackError;
use vmrun_images::{ImageError, ImageStore, PullOptions, PulledImage};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Root (ownership, device nodes, trusted xattrs) and the registry binary; `None` (reason printed) otherwise.
fn start_registry() -> Option<Registry> {
    if !common::require_root() {
        return None;
    }
    Registry::start(Auth::Anonymous)
}

/// An image pushed into the registry.
struct Pushed {
    /// `127.0.0.1:PORT/repo:tag`.
    reference: String,
    /// `sha256:…` of each uncompressed layer.
    diff_ids: Vec<String>,
    /// `sha256:…` of each layer blob as pushed.
    blobs: Vec<String>,
}

/// Pushes the layers (each in its form), a config and an OCI manifest tagged `repo:tag`.
fn push_image(
    registry: &Registry,
    repo: &str,
    tag: &str,
    layers: &[(Vec<u8>, LayerForm)],
) -> Pushed {
    let mut diff_ids = Vec::new();
    let mut blobs = Vec::new();
    let mut descriptors = Vec::new();
    for (layer, form) in layers {
        diff_ids.push(format!("sha256:{}", common::sha256_hex(layer)));
        let (blob, media_type) = form.encode(layer);
        let digest = registry.push_blob(repo, &blob);
        descriptors.push(serde_json::json!({
            "mediaType": media_type, "digest": digest, "size": blob.len(),
        }));
        blobs.push(digest);
    }
    let config = common::config_json(&diff_ids);
    let config_digest = registry.push_blob(repo, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": descriptors,
    }))
    .unwrap();
    registry.push_manifest(repo, tag, OCI_MANIFEST, &manifest);
    Pushed {
        reference: format!("{}/{repo}:{tag}", registry.addr),
        diff_ids,
        blobs,
    }
}

fn pull(store: &ImageStore, reference: &str) -> Result<PulledImage, ImageError> {
    store.pull(reference, &PullOptions::default(), &|_| {})
}

fn xattr(path: &Path, name: &str) -> Vec<u8> {
    let mut value = [0u8; 64];
    let n = rustix::fs::lgetxattr(path, name, &mut value)
        .unwrap_or_else(|e| panic!("reading {name} of {}: {e}", path.display()));
    value[..n].to_vec()
}

/// What must stay untouched while malicious pulls fail.
struct Watched {
    /// Must stay empty.
    outside: PathBuf,
    /// A file hard links try to reach; must keep one link and its content.
    victim: PathBuf,
}

impl Watched {
    fn assert_untouched(&self, context: &str) {
        let written: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            written.is_empty(),
            "{context}: written outside: {written:?}"
        );
        let meta = fs::metadata(&self.victim).unwrap();
        assert_eq!(
            meta.nlink(),
            1,
            "{context}: the victim file got a hard link"
        );
        assert_eq!(fs::read(&self.victim).unwrap(), b"secret", "{context}");
    }
}

/// Pushes `layers` as `evil/<name>:1`, pulls it and checks the refusal:
/// the error names the reference, the layer and `expect_entry`, nothing is
/// written outside, the store is unchanged and the image is not there.
fn assert_pull_refused(
    registry: &Registry,
    store: &ImageStore,
    watched: &Watched,
    name: &str,
    layers: Vec<Vec<u8>>,
    expect_entry: &str,
) {
    let forms: Vec<_> = layers.into_iter().map(|l| (l, LayerForm::Gzip)).collect();
    let pushed = push_image(registry, &format!("evil/{name}"), "1", &forms);
    let reference = &pushed.reference;
    let before = common::snapshot(store.root());
    let err = pull(store, reference).expect_err("a malicious layer must be refused");
    let msg = err.to_string();
    match &err {
        ImageError::Layer {
            image,
            layer,
            source: UnpackError::UnsafeEntry { entry, .. },
        } => {
            assert_eq!(image, reference, "{msg}");
            assert_eq!(entry, expect_entry, "{msg}");
            // The offending layer is the last one of each crafted image.
            assert_eq!(Some(layer), pushed.diff_ids.last(), "{msg}");
        }
        other => panic!("{name}: expected an unsafe-entry error, got {other:?}"),
    }
    assert!(
        msg.contains(reference.as_str()) && msg.contains(expect_entry),
        "{msg}"
    );
    watched.assert_untouched(name);
    assert_eq!(
        common::snapshot(store.root()),
        before,
        "{name}: store changed"
    );
    assert!(
        matches!(store.resolve(reference), Err(ImageError::NotFound(_))),
        "{name}: the refused image is visible"
    );
}

#[test]
fn malicious_layers_are_refused_by_pull_and_the_store_still_works() {
    let Some(registry) = start_registry() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let watched = Watched {
        outside: tmp.path().join("outside"),
        victim: tmp.path().join("victim/secret"),
    };
    fs::create_dir(&watched.outside).unwrap();
    fs::create_dir(tmp.path().join("victim")).unwrap();
    fs::write(&watched.victim, b"secret").unwrap();
    let outside = watched.outside.to_str().unwrap().to_owned();
    let victim = watched.victim.to_str().unwrap().to_owned();
    let victim_dir = tmp.path().join("victim").to_str().unwrap().to_owned();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let unique = format!("vmrun-layerpull-{}", std::process::id());

    // Tar-slip after a good layer: staging is store/tmp/layer-*/diff, so
    // ../../x would land in store/tmp; the good layer is not kept either.
    let mut good = RawTar::new();
    good.file("ok", b"fine");
    let mut t = RawTar::new();
    t.file("../../x", b"pwned")
        .file("../../../../../../outside/x", b"pwned");
    assert_pull_refused(
        &registry,
        &store,
        &watched,
        "slip",
        vec![good.finish(), t.finish()],
        "../../x",
    );
    assert!(!store.root().join("tmp/x").exists() && !store.root().join("x").exists());

    // Absolute paths: into the watched directory, and into /etc.
    let mut t = RawTar::new();
    t.file(&format!("{outside}/abs"), b"pwned");
    let entry = format!("{outside}/abs");
    assert_pull_refused(
        &registry,
        &store,
        &watched,
        "abs-outside",
        vec![t.finish()],
        &entry,
    );
    let mut t = RawTar::new();
    t.file(&format!("/etc/{unique}"), b"pwned");
    let entry = format!("/etc/{unique}");
    assert_pull_refused(
        &registry,
        &store,
        &watched,
        "abs-etc",
        vec![t.finish()],
        &entry,
    );
    assert!(!Path::new("/etc").join(&unique).exists());

    // A symlink to the watched directory, then a file written through it.
    let mut t = RawTar::new();
    t.symlink("a", &outside).file("a/file", b"pwned");
    assert_pull_refused(
        &registry,
        &store,
        &watched,
        "symlink",
        vec![t.finish()],
        "a/file",
    );
    // The same with a relative symlink climbing out of the layer.
    let mut t = RawTar::new();
    t.symlink("a", "../../../../../../../../../..")
        .file(&format!("a{outside}/file"), b"pwned");
    let entry = format!("a{outside}/file");
    assert_pull_refused(
        &registry,
        &store,
        &watched,
        "symlink-up",
        vec![t.finish()],
        &entry,
    );

    // Hard links to a file outside: absolute, climbing, and through a symlink.
    let mut t = RawTar::new();
    t.hardlink("passwd", &victim);
    assert_pull_refused(
        &registry,
        &store,
        &watched,
        "link-abs",
        vec![t.finish()],
        "passwd",
    );
    let mut t = RawTar::new();
    t.hardlink("passwd", &format!("../../../../../../../..{victim}"));
    assert_pull_refused(
        &registry,
        &store,
        &watched,
        "link-up",
        vec![t.finish()],
        "passwd",
    );
    let mut t = RawTar::new();
    t.symlink("d", &victim_dir).hardlink("passwd", "d/secret");
    assert_pull_refused(
        &registry,
        &store,
        &watched,
        "link-via-symlink",
        vec![t.finish()],
        "passwd",
    );

    // The store is not wedged: a good image pulls into it.
    let mut t = RawTar::new();
    t.dir("app").file("app/hello", b"hello");
    let pushed = push_image(&registry, "good/app", "1", &[(t.finish(), LayerForm::Gzip)]);
    let pulled = pull(&store, &pushed.reference).unwrap();
    assert_eq!(pulled.reference, pushed.reference);
    let image = store.resolve(&pushed.reference).unwrap();
    assert_eq!(image.id, pulled.image.id);
    assert_eq!(
        fs::read(image.layer_dirs[0].join("app/hello")).unwrap(),
        b"hello"
    );
    assert_eq!(
        store.list().unwrap().len(),
        1,
        "only the good image is stored"
    );
    watched.assert_untouched("after the good pull");
}

/// Layer 1: files, setuid file owned 1000:1000, symlinks, a hard link pair.
fn base_layer() -> Vec<u8> {
    let mut t = RawTar::new();
    t.dir("etc")
        .file("etc/a", b"a")
        .file("etc/b", b"b")
        .symlink("etc/b-link", "b")
        .dir("var")
        .dir("var/x")
        .file("var/x/1", b"1")
        .file("var/x/2", b"2")
        .dir("bin")
        .entry_owned(
            "bin/tool",
            EntryType::Regular,
            "",
            b"#!/bin/true\n",
            0o4755,
            1000,
            1000,
        )
        .symlink("bin/sh", "/bin/tool")
        .dir("data")
        .file("data/orig", b"shared")
        .hardlink("data/link", "data/orig");
    t.finish()
}

/// Layer 2: a whiteout, an opaque directory with a new file, a file with an xattr.
fn top_layer() -> Vec<u8> {
    let mut t = RawTar::new();
    t.dir("etc")
        .file("etc/.wh.a", b"")
        .dir("var")
        .dir("var/x")
        .file("var/x/.wh..wh..opq", b"")
        .file("var/x/new", b"new")
        .pax(&[("SCHILY.xattr.user.vmrun", b"test")])
        .file("etc/tagged", b"x");
    t.finish()
}

#[test]
fn multi_layer_image_keeps_whiteouts_links_modes_and_xattrs() {
    let Some(registry) = start_registry() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let pushed = push_image(
        &registry,
        "test/layered",
        "1",
        &[
            (base_layer(), LayerForm::Gzip),
            (top_layer(), LayerForm::Gzip),
        ],
    );
    let pulled = pull(&store, &pushed.reference).unwrap();
    let dirs = &pulled.image.layer_dirs;
    assert_eq!(dirs.len(), 2);
    let (base, top) = (&dirs[0], &dirs[1]);

    // Layer 1 as written.
    assert_eq!(fs::read(base.join("etc/a")).unwrap(), b"a");
    assert_eq!(fs::read(base.join("etc/b")).unwrap(), b"b");
    assert_eq!(
        fs::read_link(base.join("etc/b-link")).unwrap(),
        Path::new("b")
    );
    assert_eq!(
        fs::read_link(base.join("bin/sh")).unwrap(),
        Path::new("/bin/tool")
    );
    let tool = fs::symlink_metadata(base.join("bin/tool")).unwrap();
    assert!(tool.is_file());
    assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid mode kept");
    assert_eq!((tool.uid(), tool.gid()), (1000, 1000));
    let orig = fs::metadata(base.join("data/orig")).unwrap();
    let link = fs::metadata(base.join("data/link")).unwrap();
    assert_eq!(
        (orig.dev(), orig.ino()),
        (link.dev(), link.ino()),
        "hard links share an inode"
    );
    assert_eq!(orig.nlink(), 2);
    for n in ["1", "2"] {
        assert!(base.join("var/x").join(n).is_file());
    }

    // Layer 2 in overlayfs form.
    let whiteout = fs::symlink_metadata(top.join("etc/a")).unwrap();
    assert!(
        whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
        "etc/a is a 0:0 char device whiteout"
    );
    assert!(!top.join("etc/.wh.a").exists() && !top.join("etc/b").exists());
    assert_eq!(xattr(&top.join("var/x"), "trusted.overlay.opaque"), b"y");
    let mut opaque: Vec<_> = fs::read_dir(top.join("var/x"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    opaque.sort();
    assert_eq!(
        opaque,
        vec!["new".to_owned()],
        "the opaque marker is not a file"
    );
    assert_eq!(xattr(&top.join("etc/tagged"), "user.vmrun"), b"test");
    assert_eq!(
        rustix::fs::lgetxattr(
            top.join("etc").as_path(),
            "trusted.overlay.opaque",
            &mut [0u8; 4]
        ),
        Err(rustix::io::Errno::NODATA),
        "etc is not opaque"
    );

    check_overlay_view(tmp.path(), base, top);
}

/// Unmounts (lazily, if a check panicked) when dropped.
struct Mount(Option<PathBuf>);

impl Mount {
    fn unmount(mut self) {
        if let Some(path) = self.0.take() {
            let status = Command::new("umount").arg(&path).status().unwrap();
            assert!(status.success(), "umount {}", path.display());
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = Command::new("umount").arg("-l").arg(&path).status();
        }
    }
}

/// Mounts the two layers read-only with overlayfs and checks the merged view.
fn check_overlay_view(tmp: &Path, base: &Path, top: &Path) {
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems
        .lines()
        .any(|l| l.trim_end().ends_with("overlay"))
    {
        eprintln!("skipping the overlayfs view: overlay is not in /proc/filesystems");
        return;
    }
    let merged = tmp.join("merged");
    fs::create_dir(&merged).unwrap();
    let options = format!("ro,lowerdir={}:{}", top.display(), base.display());
    let out = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount -t overlay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mount = Mount(Some(merged.clone()));
    assert!(
        fs::symlink_metadata(merged.join("etc/a")).is_err(),
        "etc/a is whited out"
    );
    assert_eq!(fs::read(merged.join("etc/b")).unwrap(), b"b");
    assert_eq!(fs::read(merged.join("etc/b-link")).unwrap(), b"b");
    assert_eq!(fs::read(merged.join("etc/tagged")).unwrap(), b"x");
    let mut var_x: Vec<_> = fs::read_dir(merged.join("var/x"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    var_x.sort();
    assert_eq!(var_x, vec!["new".to_owned()], "var/x is opaque");
    let tool = fs::metadata(merged.join("bin/tool")).unwrap();
    assert_eq!((tool.mode() & 0o7777, tool.uid()), (0o4755, 1000));
    assert_eq!(fs::read(merged.join("data/link")).unwrap(), b"shared");
    mount.unmount();
    assert_eq!(fs::read_dir(&merged).unwrap().count(), 0, "unmounted");
}

#[test]
fn zstd_layer_pulls_and_unpacks() {
    let Some(registry) = start_registry() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let content = b"compressed with zstd\n".repeat(1000);
    let mut zst = RawTar::new();
    zst.dir("z").file("z/big", &content);
    let mut plain = RawTar::new();
    plain.file("z/plain", b"plain");
    let pushed = push_image(
        &registry,
        "test/zstd",
        "1",
        &[
            (zst.finish(), LayerForm::Zstd),
            (plain.finish(), LayerForm::Plain),
        ],
    );
    let pulled = pull(&store, &pushed.reference).unwrap();
    let dirs = &pulled.image.layer_dirs;
    assert_eq!(fs::read(dirs[0].join("z/big")).unwrap(), content);
    assert_eq!(fs::read(dirs[1].join("z/plain")).unwrap(), b"plain");
    assert_eq!(pulled.image.size, content.len() as u64 + 5);
    // The blob is kept as distributed (zstd), under its digest.
    let hex = pushed.blobs[0].strip_prefix("sha256:").unwrap();
    let blob = fs::read(store.root().join("blobs/sha256").join(hex)).unwrap();
    assert!(blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]), "zstd magic");
    assert_eq!(
        format!("sha256:{}", common::sha256_hex(&blob)),
        pushed.blobs[0]
    );
}

#[test]
fn device_nodes_are_created_as_root() {
    // The unpacker creates device nodes only as root and skips them (with a
    // warning) otherwise; these tests run only as root.
    let Some(registry) = start_registry() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let mut t = RawTar::new();
    t.dir("dev")
        .device("dev/null2", EntryType::Char, 1, 3, 0o666)
        .device("dev/blk", EntryType::Block, 7, 200, 0o660)
        .device("dev/pipe", EntryType::Fifo, 0, 0, 0o640)
        .file("dev/regular", b"r");
    let pushed = push_image(
        &registry,
        "test/devices",
        "1",
        &[(t.finish(), LayerForm::Gzip)],
    );
    let pulled = pull(&store, &pushed.reference).unwrap();
    let dev = pulled.image.layer_dirs[0].join("dev");
    let null2 = fs::symlink_metadata(dev.join("null2")).unwrap();
    assert!(null2.file_type().is_char_device());
    assert_eq!(
        (
            rustix::fs::major(null2.rdev()),
            rustix::fs::minor(null2.rdev())
        ),
        (1, 3)
    );
    assert_eq!(null2.mode() & 0o7777, 0o666);
    let blk = fs::symlink_metadata(dev.join("blk")).unwrap();
    assert!(blk.file_type().is_block_device());
    assert_eq!(
        (rustix::fs::major(blk.rdev()), rustix::fs::minor(blk.rdev())),
        (7, 200)
    );
    assert_eq!(blk.mode() & 0o7777, 0o660);
    let pipe = fs::symlink_metadata(dev.join("pipe")).unwrap();
    assert!(pipe.file_type().is_fifo());
    assert_eq!(pipe.mode() & 0o7777, 0o640);
    assert_eq!(fs::read(dev.join("regular")).unwrap(), b"r");
}
