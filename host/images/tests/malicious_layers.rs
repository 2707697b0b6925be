//! Layers that try to write outside their directory are refused by `load`,
//! with an error naming the image and the entry, and nothing is written.

mod common;

use std::fs;
use std::path::Path;

use vmrun_images::unpack::UnpackError;
use vmrun_images::{ImageError, ImageStore};

fn assert_refused(layer: Vec<u8>, expect_entry: &str, outside: &Path, store: &ImageStore) {
    let before = common::snapshot(store.root());
    let archive = common::oci_layout("evil:1", &[layer]);
    let err = store
        .load(&archive[..])
        .expect_err("a malicious layer must be refused");
    let msg = err.to_string();
    match &err {
        ImageError::Layer {
            image,
            source: UnpackError::UnsafeEntry { entry, .. },
            ..
        } => {
            assert_eq!(image, "evil:1");
            assert_eq!(entry, expect_entry);
        }
        other => panic!("expected an unsafe-entry error, got {other:?}"),
    }
    assert!(
        msg.contains("evil:1") && msg.contains(expect_entry),
        "{msg}"
    );
    assert_eq!(
        fs::read_dir(outside).unwrap().count(),
        0,
        "written outside: {msg}"
    );
    assert_eq!(common::snapshot(store.root()), before);
    assert!(matches!(
        store.resolve("evil:1"),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn malicious_layers_are_refused() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let unique = format!("vmrun-images-test-{}", std::process::id());

    // Tar-slip: the staging layer is store/tmp/layer-*/diff, so ../../x would land in store/tmp.
    let mut t = common::RawTar::new();
    t.file("../../x", b"pwned")
        .file("../../../../outside/x", b"pwned");
    assert_refused(t.finish(), "../../x", &outside, &store);
    assert!(!store.root().join("tmp/x").exists() && !store.root().join("x").exists());

    // Absolute path.
    let mut t = common::RawTar::new();
    t.file(&format!("/etc/{unique}"), b"pwned");
    assert_refused(t.finish(), &format!("/etc/{unique}"), &outside, &store);
    assert!(!Path::new("/etc").join(&unique).exists());

    // Symlink to /etc, then a/passwd through it.
    let mut t = common::RawTar::new();
    t.symlink("a", "/etc")
        .file("a/passwd", b"root::0:0::/:/bin/sh\n");
    assert_refused(t.finish(), "a/passwd", &outside, &store);

    // Symlink to a directory outside, then a file through it.
    let mut t = common::RawTar::new();
    t.symlink("a", outside.to_str().unwrap())
        .file("a/x", b"pwned");
    assert_refused(t.finish(), "a/x", &outside, &store);

    // Hard link to /etc/passwd.
    let mut t = common::RawTar::new();
    t.hardlink("passwd", "/etc/passwd");
    assert_refused(t.finish(), "passwd", &outside, &store);
    let mut t = common::RawTar::new();
    t.hardlink("passwd", "../../../../../../etc/passwd");
    assert_refused(t.finish(), "passwd", &outside, &store);

    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    assert!(!passwd.contains("root::0:0::/:/bin/sh"));
}

#[test]
fn whiteouts_are_kept_in_overlayfs_form() {
    if !common::require_root() {
        return;
    }
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let mut base = common::RawTar::new();
    base.dir("etc")
        .file("etc/motd", b"hi")
        .dir("var")
        .file("var/old", b"o");
    let mut top = common::RawTar::new();
    top.file("etc/.wh.motd", b"")
        .dir("var")
        .file("var/.wh..wh..opq", b"")
        .file("var/new", b"n");
    store
        .load(&common::oci_layout("wh:1", &[base.finish(), top.finish()])[..])
        .unwrap();
    let image = store.resolve("wh:1").unwrap();
    let top = &image.layer_dirs[1];
    let motd = fs::symlink_metadata(top.join("etc/motd")).unwrap();
    assert!(motd.file_type().is_char_device() && motd.rdev() == 0);
    let mut value = [0u8; 8];
    let n = rustix::fs::getxattr(
        top.join("var").as_path(),
        "trusted.overlay.opaque",
        &mut value,
    )
    .unwrap();
    assert_eq!(&value[..n], b"y");
    assert!(top.join("var/new").exists());
    assert!(image.layer_dirs[0].join("var/old").exists());
}
