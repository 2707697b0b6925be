//! Broken archives fail with a clear error and leave the store as it was.

mod common;

use std::fs;
use std::path::Path;

use vmrun_images::{ImageError, ImageStore};

/// A store holding one small image, so "unchanged" means something.
fn store_with_an_image(dir: &Path) -> ImageStore {
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let mut layer = common::RawTar::new();
    layer.file("hello", b"hello");
    store
        .load(&common::oci_layout("base:1", &[layer.finish()])[..])
        .unwrap();
    store
}

fn assert_fails_unchanged(
    store: &ImageStore,
    archive: &[u8],
    check: impl Fn(&ImageError) -> bool,
) -> String {
    let before = common::snapshot(store.root());
    let listed_before = store.list().unwrap().len();
    let err = store.load(archive).expect_err("the load must fail");
    assert!(check(&err), "unexpected error: {err:?}");
    assert_eq!(
        common::snapshot(store.root()),
        before,
        "the store changed after a failed load ({err})"
    );
    assert_eq!(store.list().unwrap().len(), listed_before);
    let leftovers: Vec<_> = fs::read_dir(store.root().join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    err.to_string()
}

fn busybox_files(dir: &Path, format: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let archive = common::make_busybox(dir, format)?;
    Some(common::read_tar(&fs::read(archive).unwrap()))
}

fn largest(files: &mut [(String, Vec<u8>)]) -> &mut (String, Vec<u8>) {
    files.iter_mut().max_by_key(|(_, d)| d.len()).unwrap()
}

#[test]
fn truncated_archive() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(archive) = common::make_busybox(tmp.path(), "oci") else {
        return;
    };
    let store = store_with_an_image(tmp.path());
    let bytes = fs::read(archive).unwrap();
    for cut in [bytes.len() / 2, 700, bytes.len() / 3] {
        let msg = assert_fails_unchanged(&store, &bytes[..cut], |e| {
            matches!(
                e,
                ImageError::InvalidArchive(_) | ImageError::DigestMismatch { .. }
            )
        });
        eprintln!("truncated at {cut}: {msg}");
    }
    let msg = assert_fails_unchanged(&store, &bytes[..bytes.len() / 2], |e| {
        matches!(e, ImageError::InvalidArchive(_))
    });
    assert!(msg.contains("truncated or corrupt"), "{msg}");
}

#[test]
fn garbage_and_empty_archives() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_an_image(tmp.path());
    let garbage: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_fails_unchanged(&store, &garbage, |e| {
        matches!(e, ImageError::InvalidArchive(_))
    });
    let empty = common::plain_tar(&[]);
    let msg = assert_fails_unchanged(&store, &empty, |e| {
        matches!(e, ImageError::InvalidArchive(_))
    });
    assert!(msg.contains("neither an OCI image layout"), "{msg}");
}

#[test]
fn wrong_blob_digest() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut files) = busybox_files(tmp.path(), "oci") else {
        return;
    };
    let store = store_with_an_image(tmp.path());
    let (name, data) = largest(&mut files);
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    let name = name.clone();
    let msg = assert_fails_unchanged(&store, &common::plain_tar(&files), |e| {
        matches!(e, ImageError::DigestMismatch { .. })
    });
    assert!(msg.contains(&name), "the error names the blob: {msg}");
}

#[test]
fn wrong_diff_id() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_an_image(tmp.path());
    // A docker-archive whose config promises a diff id the layer does not have.
    let mut layer = common::RawTar::new();
    layer.file("a", b"a");
    let layer = layer.finish();
    let config = common::config_json(&[format!("sha256:{}", "0".repeat(64))]);
    let config_hex = common::sha256_hex(&config);
    let manifest = format!(
        r#"[{{"Config":"{config_hex}.json","RepoTags":["bad:1"],"Layers":["l/layer.tar"]}}]"#
    );
    let archive = common::plain_tar(&[
        ("manifest.json".into(), manifest.into_bytes()),
        (format!("{config_hex}.json"), config),
        ("l/layer.tar".into(), layer),
    ]);
    let msg = assert_fails_unchanged(&store, &archive, |e| {
        matches!(e, ImageError::DigestMismatch { .. })
    });
    assert!(msg.contains("bad:1") && msg.contains("diff_ids"), "{msg}");
}

#[test]
fn docker_archive_with_a_truncated_layer() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut files) = busybox_files(tmp.path(), "docker") else {
        return;
    };
    let store = store_with_an_image(tmp.path());
    let (_, layer) = largest(&mut files);
    layer.truncate(layer.len() / 2);
    let msg = assert_fails_unchanged(&store, &common::plain_tar(&files), |e| {
        matches!(
            e,
            ImageError::Layer { .. } | ImageError::DigestMismatch { .. }
        )
    });
    assert!(
        msg.contains("busybox:latest"),
        "the error names the image: {msg}"
    );
}

#[test]
fn docker_archive_config_not_matching_its_name() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut files) = busybox_files(tmp.path(), "docker") else {
        return;
    };
    let store = store_with_an_image(tmp.path());
    let config = files
        .iter_mut()
        .find(|(n, _)| n.ends_with(".json") && n.len() == 69)
        .unwrap();
    config.1 = String::from_utf8(config.1.clone())
        .unwrap()
        .replace("\"sh\"", "\"ash\"")
        .into_bytes();
    assert_fails_unchanged(&store, &common::plain_tar(&files), |e| {
        matches!(e, ImageError::DigestMismatch { .. })
    });
}

#[test]
fn missing_blob() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut files) = busybox_files(tmp.path(), "oci") else {
        return;
    };
    let store = store_with_an_image(tmp.path());
    let biggest = largest(&mut files).0.clone();
    files.retain(|(n, _)| *n != biggest);
    let msg = assert_fails_unchanged(&store, &common::plain_tar(&files), |e| {
        matches!(e, ImageError::InvalidArchive(_))
    });
    assert!(msg.contains("missing"), "{msg}");
}
