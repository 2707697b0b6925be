//! `ImageStore::import`: one-layer images from root-filesystem tarballs (`docker import`).

mod common;

use std::fs;
use std::path::Path;

use vmrun_images::{Digest, ImageError, ImageStore, ImportOptions, Platform};

fn rootfs_tar() -> Vec<u8> {
    let mut tar = common::RawTar::new();
    tar.dir("bin")
        .file("bin/hello", b"#!/bin/sh\necho hello\n")
        .dir("etc")
        .file("etc/os-release", b"ID=imported\n")
        .symlink("bin/hi", "hello");
    tar.finish()
}

fn blob_path(store: &ImageStore, digest: &str) -> std::path::PathBuf {
    let digest: Digest = digest.parse().unwrap();
    store.root().join("blobs/sha256").join(digest.hex())
}

/// The stored manifest of an image (found through its config digest).
fn manifest_of(store: &ImageStore, config_id: &str) -> serde_json::Value {
    for entry in fs::read_dir(store.root().join("blobs/sha256")).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if value["config"]["digest"] == config_id {
                return value;
            }
        }
    }
    panic!("no manifest names config {config_id}");
}

fn check_imported(store: &ImageStore, input: &[u8], media_type: &str, opts: &ImportOptions) {
    let loaded = store.import(&mut &input[..], opts).unwrap();
    let reference = opts.reference.as_deref().unwrap_or(&loaded.id);
    let image = store.resolve(reference).unwrap();
    assert_eq!(image.id, loaded.id);
    assert_eq!(image.layer_dirs.len(), 1);
    let diff = &image.layer_dirs[0];
    assert_eq!(
        fs::read(diff.join("bin/hello")).unwrap(),
        b"#!/bin/sh\necho hello\n"
    );
    assert_eq!(
        fs::read_link(diff.join("bin/hi")).unwrap(),
        Path::new("hello")
    );
    assert_eq!(image.config.rootfs().diff_ids().len(), 1);
    assert_eq!(
        image.config.rootfs().diff_ids()[0],
        format!("sha256:{}", common::sha256_hex(&rootfs_tar()))
    );
    // The id is the digest of the stored config.
    let config_bytes = fs::read(blob_path(store, &image.id)).unwrap();
    assert_eq!(
        image.id,
        format!("sha256:{}", common::sha256_hex(&config_bytes))
    );
    // The layer blob is stored as given and named by the manifest.
    let manifest = manifest_of(store, &image.id);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], media_type);
    assert_eq!(layer["size"], input.len());
    assert_eq!(
        layer["digest"],
        format!("sha256:{}", common::sha256_hex(input))
    );
    let stored = fs::read(blob_path(store, layer["digest"].as_str().unwrap())).unwrap();
    assert_eq!(stored, input);
    let host = Platform::host();
    assert_eq!(image.architecture, host.architecture);
    assert_eq!(image.os, host.os);
    assert!(image.created.is_some());
}

#[test]
fn imports_plain_gzip_and_zstd_tarballs() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let plain = rootfs_tar();
    let opts = |r: &str| ImportOptions {
        reference: Some(r.to_owned()),
        ..Default::default()
    };
    check_imported(
        &store,
        &plain,
        "application/vnd.oci.image.layer.v1.tar",
        &opts("imported/plain:1"),
    );
    check_imported(
        &store,
        &common::gzip(&plain),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &opts("imported/gzip"),
    );
    check_imported(
        &store,
        &zstd::encode_all(&plain[..], 3).unwrap(),
        "application/vnd.oci.image.layer.v1.tar+zstd",
        &opts("docker.io/imported/zstd:v2"),
    );
    // `:latest` by default, and the familiar forms resolve.
    let tagged = store.resolve("imported/gzip:latest").unwrap();
    assert_eq!(tagged.repo_tags, vec!["imported/gzip:latest".to_owned()]);
    assert!(store.resolve("docker.io/imported/plain:1").is_ok());
    // Three images (different blobs, same unpacked layer, shared).
    assert_eq!(store.list().unwrap().len(), 3);
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        1
    );
}

#[test]
fn config_has_changes_and_history() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let changes = [
        r#"CMD ["/bin/hello", "world"]"#,
        "ENTRYPOINT /bin/sh -e",
        "ENV PATH=/bin GREETING=\"hello there\"",
        "ENV LEGACY one two",
        "WORKDIR /srv",
        "USER 1000",
        "EXPOSE 80 53/udp",
        "LABEL maintainer=me org.example.x=y",
        "VOLUME /data",
        "STOPSIGNAL SIGINT",
    ];
    let opts = ImportOptions {
        reference: Some("changed:1".into()),
        message: Some("from a test".into()),
        changes: changes.iter().map(|s| (*s).to_owned()).collect(),
        platform: Some("linux/arm64/v8".parse().unwrap()),
    };
    let loaded = store.import(&mut &rootfs_tar()[..], &opts).unwrap();
    assert_eq!(loaded.reference, "changed:1");
    let image = store.resolve("changed:1").unwrap();
    let config = image.config.config().as_ref().expect("a container config");
    assert_eq!(
        config.cmd().as_deref(),
        Some(&["/bin/hello".to_owned(), "world".to_owned()][..])
    );
    assert_eq!(
        config.entrypoint().as_deref(),
        Some(
            &[
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                "/bin/sh -e".to_owned()
            ][..]
        )
    );
    assert_eq!(
        config.env().as_deref(),
        Some(
            &[
                "PATH=/bin".to_owned(),
                "GREETING=hello there".to_owned(),
                "LEGACY=one two".to_owned()
            ][..]
        )
    );
    assert_eq!(config.working_dir().as_deref(), Some("/srv"));
    assert_eq!(config.user().as_deref(), Some("1000"));
    let mut ports = config.exposed_ports().clone().unwrap_or_default();
    ports.sort();
    assert_eq!(ports, vec!["53/udp".to_owned(), "80/tcp".to_owned()]);
    let labels = config.labels().clone().unwrap_or_default();
    assert_eq!(labels.get("maintainer").map(String::as_str), Some("me"));
    assert_eq!(labels.get("org.example.x").map(String::as_str), Some("y"));
    assert_eq!(config.volumes().clone().unwrap_or_default(), vec!["/data"]);
    assert_eq!(config.stop_signal().as_deref(), Some("SIGINT"));
    assert_eq!(image.architecture, "arm64");
    let raw: serde_json::Value =
        serde_json::from_slice(&fs::read(blob_path(&store, &image.id)).unwrap()).unwrap();
    assert_eq!(raw["variant"], "v8");
    assert_eq!(raw["rootfs"]["type"], "layers");
    let history = raw["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["comment"], "from a test");
    assert_eq!(history[0]["created"], raw["created"]);
    assert!(history[0].get("created_by").is_none());
    let created = raw["created"].as_str().unwrap();
    assert!(
        created.len() >= 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );
}

#[test]
fn untagged_import_resolves_by_id() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let loaded = store
        .import(&mut &rootfs_tar()[..], &ImportOptions::default())
        .unwrap();
    assert_eq!(loaded.reference, loaded.id);
    let image = store.resolve(&loaded.id).unwrap();
    assert!(image.repo_tags.is_empty());
    let prefix = &loaded.id["sha256:".len()..][..12];
    assert_eq!(store.resolve(prefix).unwrap().id, loaded.id);
    let raw: serde_json::Value =
        serde_json::from_slice(&fs::read(blob_path(&store, &image.id)).unwrap()).unwrap();
    assert_eq!(raw["history"][0]["comment"], "Imported from -");
    assert_eq!(raw["config"], serde_json::json!({}));
}

/// What a failed import's error must look like.
type ErrorCheck = fn(&ImageError) -> bool;

/// Imports that must fail, each leaving the store (holding one image) unchanged.
#[test]
fn failed_imports_leave_the_store_unchanged() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    store
        .import(
            &mut &rootfs_tar()[..],
            &ImportOptions {
                reference: Some("base:1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let before = common::snapshot(store.root());
    let tagged = |changes: &[&str]| ImportOptions {
        reference: Some("bad:1".into()),
        changes: changes.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    let mut malicious = common::RawTar::new();
    malicious.file("ok", b"fine").file("../x", b"escaped");
    let malicious = malicious.finish();
    let mut garbage = b"this is not a tar archive at all\n".repeat(40);
    garbage.truncate(1000);
    let cases: Vec<(&str, Vec<u8>, ImportOptions, ErrorCheck)> = vec![
        ("malicious ../x", malicious.clone(), tagged(&[]), |e| {
            matches!(e, ImageError::Layer { .. }) && e.to_string().contains("../x")
        }),
        (
            "malicious gzip",
            common::gzip(&malicious),
            tagged(&[]),
            |e| matches!(e, ImageError::Layer { .. }),
        ),
        (
            "RUN change",
            rootfs_tar(),
            tagged(&["CMD x", "RUN x"]),
            |e| matches!(e, ImageError::InvalidChange(m) if m == "run is not a valid change command"),
        ),
        (
            "empty input",
            Vec::new(),
            tagged(&[]),
            |e| matches!(e, ImageError::InvalidArchive(m) if m.contains("empty")),
        ),
        (
            "not a tar",
            garbage.clone(),
            tagged(&[]),
            |e| matches!(e, ImageError::InvalidArchive(m) if m.contains("not a tar")),
        ),
        (
            "gzip of not a tar",
            common::gzip(&garbage),
            tagged(&[]),
            |e| matches!(e, ImageError::InvalidArchive(m) if m.contains("not a tar")),
        ),
        (
            "short input",
            b"tiny".to_vec(),
            tagged(&[]),
            |e| matches!(e, ImageError::InvalidArchive(m) if m.contains("not a tar")),
        ),
        (
            "truncated gzip",
            common::gzip(&rootfs_tar())[..40].to_vec(),
            tagged(&[]),
            |e| matches!(e, ImageError::InvalidArchive(m) if m.contains("gzip")),
        ),
        (
            "digest tag",
            rootfs_tar(),
            ImportOptions {
                reference: Some(format!("x@sha256:{}", "0".repeat(64))),
                ..Default::default()
            },
            |e| matches!(e, ImageError::InvalidReference { .. }),
        ),
    ];
    for (what, input, opts, check) in cases {
        let err = store
            .import(&mut &input[..], &opts)
            .expect_err(&format!("{what}: the import must fail"));
        assert!(check(&err), "{what}: unexpected error {err:?}");
        eprintln!("{what}: {err}");
        assert_eq!(
            common::snapshot(store.root()),
            before,
            "{what}: the store changed after a failed import"
        );
        let leftovers: Vec<_> = fs::read_dir(store.root().join("tmp")).unwrap().collect();
        assert!(
            leftovers.is_empty(),
            "{what}: staging left behind: {leftovers:?}"
        );
    }
    assert!(matches!(
        store.resolve("bad:1"),
        Err(ImageError::NotFound(_))
    ));
    assert_eq!(store.list().unwrap().len(), 1);
}
