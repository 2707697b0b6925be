//! The default image from `installer/make-busybox-image.sh`, through the whole store API.

mod common;

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;

use vmrun_images::{ImageError, ImageStore, RemovedItem};

#[test]
fn loads_resolves_tags_and_removes_the_busybox_image() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(archive) = common::make_busybox(tmp.path(), "oci") else {
        return;
    };
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();

    let loaded = store.load(File::open(&archive).unwrap()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].reference, "busybox:latest");
    let id = loaded[0].id.clone();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    // Every way of naming it.
    let hex = &id["sha256:".len()..];
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        "docker.io/library/busybox",
        id.as_str(),
        hex,
        &hex[..4],
        &hex[..12],
    ] {
        let image = store
            .resolve(name)
            .unwrap_or_else(|e| panic!("resolving {name}: {e}"));
        assert_eq!(image.id, id, "{name}");
    }
    assert!(
        matches!(store.resolve("busybox:1.0"), Err(ImageError::NotFound(r)) if r == "busybox:1.0")
    );
    assert!(matches!(
        store.resolve("nosuch"),
        Err(ImageError::NotFound(_))
    ));
    assert!(
        matches!(store.resolve(&hex[..3]), Err(ImageError::NotFound(_))),
        "3 hex chars are not an id prefix"
    );

    // What it is made of.
    let image = store.resolve("busybox").unwrap();
    assert_eq!(image.repo_tags, vec!["busybox:latest"]);
    assert_eq!(
        (image.architecture.as_str(), image.os.as_str()),
        ("amd64", "linux")
    );
    assert_eq!(image.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    let config = image.config.config().as_ref().unwrap();
    assert_eq!(config.cmd().as_deref(), Some(&["sh".to_owned()][..]));
    assert_eq!(
        config.env().as_deref(),
        Some(&["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()][..])
    );
    assert_eq!(image.layer_dirs.len(), 1);
    let rootfs = &image.layer_dirs[0];
    assert!(rootfs.starts_with(store.root().join("layers")));
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    let busybox = fs::metadata(rootfs.join("bin/busybox")).unwrap();
    assert_eq!(busybox.permissions().mode() & 0o7777, 0o755);
    assert_eq!(image.size, busybox.len() + image_text_files_size(rootfs));
    assert_eq!(
        fs::metadata(rootfs.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert!(fs::read_to_string(rootfs.join("etc/passwd"))
        .unwrap()
        .contains("nobody:x:65534:65534:"));
    assert!(rootfs.join("var/spool/mail").is_dir());

    // The binary really runs from the unpacked layer.
    let out = std::process::Command::new(rootfs.join("bin/busybox"))
        .arg("echo")
        .arg("ok")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"ok\n");

    // Tag, list, remove.
    store.tag("busybox", "localhost:5000/tools/bb:v1").unwrap();
    store.tag(&hex[..8], "mybox").unwrap();
    let image = store.resolve("localhost:5000/tools/bb:v1").unwrap();
    assert_eq!(
        image.repo_tags,
        vec![
            "busybox:latest",
            "localhost:5000/tools/bb:v1",
            "mybox:latest"
        ]
    );
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(matches!(
        store.tag(
            "busybox",
            "x@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        ),
        Err(ImageError::InvalidReference { .. })
    ));
    assert!(matches!(
        store.tag("nosuch", "y"),
        Err(ImageError::NotFound(_))
    ));

    assert!(
        matches!(store.remove(hex, false, &[]), Err(ImageError::Conflict(_))),
        "by id with several repositories"
    );
    assert_eq!(
        store.remove("mybox", false, &[]).unwrap(),
        vec![RemovedItem::Untagged("mybox:latest".into())]
    );
    assert_eq!(
        store
            .remove("localhost:5000/tools/bb:v1", false, &[])
            .unwrap(),
        vec![RemovedItem::Untagged("localhost:5000/tools/bb:v1".into())]
    );
    assert!(rootfs.exists(), "still tagged busybox:latest");

    // Reopening keeps everything.
    drop(store);
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    assert_eq!(store.resolve("busybox").unwrap().id, id);

    let removed = store
        .remove("docker.io/library/busybox", false, &[])
        .unwrap();
    assert_eq!(removed[0], RemovedItem::Untagged("busybox:latest".into()));
    assert_eq!(removed[1], RemovedItem::Deleted(id.clone()));
    assert_eq!(removed.len(), 3, "the layer is deleted too: {removed:?}");
    assert!(!rootfs.exists());
    assert!(store.list().unwrap().is_empty());
    assert!(matches!(
        store.resolve("busybox"),
        Err(ImageError::NotFound(_))
    ));
    let blobs: Vec<_> = fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .collect();
    assert!(blobs.is_empty(), "blobs left behind: {blobs:?}");
}

/// Bytes of the regular files other than the busybox binary (etc/*).
fn image_text_files_size(rootfs: &std::path::Path) -> u64 {
    ["etc/passwd", "etc/group", "etc/shadow", "etc/nsswitch.conf"]
        .iter()
        .map(|f| fs::metadata(rootfs.join(f)).unwrap().len())
        .sum()
}

#[test]
fn the_script_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(a) = common::make_busybox(tmp.path(), "oci") else {
        return;
    };
    let first = fs::read(&a).unwrap();
    let b = common::make_busybox(tmp.path(), "oci").unwrap();
    assert_eq!(
        first,
        fs::read(b).unwrap(),
        "two runs gave different archives"
    );
}

#[test]
fn docker_archive_form_loads_to_the_same_image_and_shares_the_layer() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(oci) = common::make_busybox(tmp.path(), "oci") else {
        return;
    };
    let docker = common::make_busybox(tmp.path(), "docker").unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();

    let from_docker = store.load(File::open(&docker).unwrap()).unwrap();
    assert_eq!(from_docker.len(), 1);
    assert_eq!(from_docker[0].reference, "busybox:latest");
    let image = store.resolve("busybox").unwrap();
    assert!(image.layer_dirs[0].join("bin/sh").exists());
    let layer_dir = image.layer_dirs[0].clone();
    let inode =
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(layer_dir.join("bin/busybox")).unwrap());

    // Same config (same id), same diff id: the OCI form reuses the unpacked layer.
    let from_oci = store.load(File::open(&oci).unwrap()).unwrap();
    assert_eq!(from_oci[0].id, from_docker[0].id);
    let image = store.resolve("busybox").unwrap();
    assert_eq!(image.layer_dirs, vec![layer_dir.clone()]);
    let inode_after =
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(layer_dir.join("bin/busybox")).unwrap());
    assert_eq!(inode, inode_after, "the layer was unpacked again");
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        1
    );
}

#[test]
fn loading_twice_reuses_the_layer_and_an_image_with_a_shared_base() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let mut base = common::RawTar::new();
    base.dir("bin").file("bin/tool", b"tool");
    let base = base.finish();
    let mut top = common::RawTar::new();
    top.file("app", b"app");
    let top = top.finish();

    let a = common::oci_layout("a:1", std::slice::from_ref(&base));
    store.load(&a[..]).unwrap();
    let a_dir = store.resolve("a:1").unwrap().layer_dirs[0].clone();
    let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(a_dir.join("bin/tool")).unwrap());
    store.load(&a[..]).unwrap();
    let inode_again =
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(a_dir.join("bin/tool")).unwrap());
    assert_eq!(
        inode, inode_again,
        "loading the same image twice unpacked its layer again"
    );

    let b = common::oci_layout("b:1", &[base.clone(), top]);
    store.load(&b[..]).unwrap();
    let b_image = store.resolve("b:1").unwrap();
    assert_eq!(b_image.layer_dirs[0], a_dir, "the base layer is shared");
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        2
    );

    // Removing one image keeps the shared layer.
    let removed = store.remove("a:1", false, &[]).unwrap();
    assert_eq!(
        removed.len(),
        2,
        "untagged + deleted image, no layer: {removed:?}"
    );
    assert!(a_dir.join("bin/tool").exists());
    let removed = store.remove("b:1", false, &[]).unwrap();
    assert_eq!(removed.len(), 4, "untagged, image, two layers: {removed:?}");
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );
}

#[test]
fn a_second_store_on_the_same_root_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let _store = ImageStore::open(tmp.path()).unwrap();
    let err = ImageStore::open(tmp.path())
        .err()
        .expect("second open must fail");
    assert!(err.to_string().contains("another daemon"), "{err}");
}

#[test]
fn plain_gzip_and_zstd_layers_load() {
    if !common::require_root() {
        return;
    }
    use common::LayerForm;
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let layer = |name: &str| {
        let mut t = common::RawTar::new();
        t.file(name, name.as_bytes());
        t.finish()
    };
    let archive = common::oci_layout_with(
        "forms:1",
        &[
            (layer("plain"), LayerForm::Plain),
            (layer("gzip"), LayerForm::Gzip),
            (layer("zstd"), LayerForm::Zstd),
        ],
    );
    store.load(&archive[..]).unwrap();
    let image = store.resolve("forms:1").unwrap();
    assert_eq!(image.layer_dirs.len(), 3);
    for (dir, name) in image.layer_dirs.iter().zip(["plain", "gzip", "zstd"]) {
        assert_eq!(fs::read(dir.join(name)).unwrap(), name.as_bytes());
    }
    assert_eq!(image.size, 5 + 4 + 4);
}

#[test]
fn a_multi_platform_index_resolves_to_the_host_platform() {
    if !common::require_root() {
        return;
    }
    let mut layer = common::RawTar::new();
    layer.file("amd64-only", b"x");
    let mut files = common::read_tar(&common::oci_layout("multi:1", &[layer.finish()]));
    let index_pos = files.iter().position(|(n, _)| n == "index.json").unwrap();
    let inner: serde_json::Value = serde_json::from_slice(&files[index_pos].1).unwrap();
    let mut amd64 = inner["manifests"][0].clone();
    amd64.as_object_mut().unwrap().remove("annotations");
    amd64["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    // The arm64 manifest is absent from the archive: choosing it would fail.
    let arm64 = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", "1".repeat(64)),
        "size": 10,
        "platform": {"architecture": "arm64", "os": "linux"},
    });
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [arm64, amd64],
    }))
    .unwrap();
    let nested_hex = common::sha256_hex(&nested);
    files[index_pos].1 = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{nested_hex}"),
            "size": nested.len(),
            "annotations": {"io.containerd.image.name": "docker.io/library/multi:1"},
        }],
    }))
    .unwrap();
    files.push((format!("blobs/sha256/{nested_hex}"), nested));
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let loaded = store.load(&common::plain_tar(&files)[..]).unwrap();
    assert_eq!(loaded[0].reference, "multi:1");
    let image = store.resolve("multi:1").unwrap();
    assert!(image.layer_dirs[0].join("amd64-only").exists());
}
