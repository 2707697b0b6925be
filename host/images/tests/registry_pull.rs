//! `ImageStore::pull` against a real registry (Debian's `docker-registry`) on 127.0.0.1.

mod common;

use std::cell::RefCell;
use std::fs::File;

use common::registry::{have_tools, http, Auth, Registry};
use vmrun_images::registry::Credentials;
use vmrun_images::{ImageError, ImageStore, LayerStatus, PullOptions, PullProgress};

/// Registry + busybox archive pushed as `test/busybox:1`; `None` when something is missing.
fn registry_with_busybox(auth: Auth, creds: Option<&str>) -> Option<(Registry, tempfile::TempDir)> {
    if !common::require_root() || !have_tools(&["skopeo"]) {
        return None;
    }
    let registry = Registry::start(auth)?;
    let tmp = tempfile::tempdir().unwrap();
    let archive = common::make_busybox(tmp.path(), "oci")?;
    registry.skopeo_push(&archive, "test/busybox:1", creds);
    Some((registry, tmp))
}

fn pull_collect(
    store: &ImageStore,
    reference: &str,
    opts: &PullOptions,
) -> (
    Result<vmrun_images::PulledImage, ImageError>,
    Vec<PullProgress>,
) {
    let events = RefCell::new(Vec::new());
    let result = store.pull(reference, opts, &|p| events.borrow_mut().push(p));
    (result, events.into_inner())
}

fn statuses(events: &[PullProgress]) -> Vec<LayerStatus> {
    events.iter().map(|e| e.status).collect()
}

fn layer_digest(registry: &Registry, repo: &str, tag: &str) -> String {
    let (status, _, body) = http(
        &registry.addr,
        "GET",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        b"",
    );
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["layers"][0]["digest"].as_str().unwrap().to_owned()
}

#[test]
fn pulls_by_tag_then_by_digest_and_reports_progress() {
    let Some((registry, tmp)) = registry_with_busybox(Auth::Anonymous, None) else {
        return;
    };
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let reference = format!("{}/test/busybox:1", registry.addr);
    let (result, events) = pull_collect(&store, &reference, &PullOptions::default());
    let pulled = result.unwrap();
    assert!(pulled.updated);
    assert_eq!(pulled.reference, reference);
    assert_eq!(pulled.image.repo_tags, vec![reference.clone()]);
    let repo_digest = format!("{}/test/busybox@{}", registry.addr, pulled.digest);
    assert_eq!(pulled.image.repo_digests, vec![repo_digest.clone()]);
    assert_eq!(pulled.image.architecture, "amd64");
    assert!(pulled.image.layer_dirs[0].join("bin/busybox").is_file());
    let s = statuses(&events);
    for wanted in [
        LayerStatus::PullingFsLayer,
        LayerStatus::Downloading,
        LayerStatus::VerifyingChecksum,
        LayerStatus::DownloadComplete,
        LayerStatus::Extracting,
        LayerStatus::PullComplete,
    ] {
        assert!(s.contains(&wanted), "{wanted} missing from {s:?}");
    }
    let last_download = events
        .iter()
        .rfind(|e| e.status == LayerStatus::Downloading)
        .unwrap();
    assert_eq!(last_download.current, last_download.total);
    assert_eq!(events[0].id.len(), 12);

    // Again: nothing new.
    let (again, events) = pull_collect(&store, &reference, &PullOptions::default());
    assert!(!again.unwrap().updated);
    assert_eq!(statuses(&events), vec![LayerStatus::AlreadyExists]);

    // By digest, into a fresh store: same image, no tag, found by digest.
    let store2 = ImageStore::open(&tmp.path().join("store2")).unwrap();
    let by_digest = format!("{}/test/busybox@{}", registry.addr, pulled.digest);
    let (result, _) = pull_collect(&store2, &by_digest, &PullOptions::default());
    let p2 = result.unwrap();
    assert_eq!(p2.image.id, pulled.image.id);
    assert!(p2.image.repo_tags.is_empty());
    assert_eq!(store2.resolve(&repo_digest).unwrap().id, pulled.image.id);

    // A wrong digest is not found.
    let wrong = format!("{}/test/busybox@sha256:{}", registry.addr, "0".repeat(64));
    let (result, _) = pull_collect(&store2, &wrong, &PullOptions::default());
    assert!(matches!(result, Err(ImageError::NotFound(_))), "{result:?}");
}

#[test]
fn shares_layers_with_a_loaded_image() {
    let Some((registry, tmp)) = registry_with_busybox(Auth::Anonymous, None) else {
        return;
    };
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let archive = tmp.path().join("busybox-oci.tar");
    store.load(File::open(&archive).unwrap()).unwrap();
    let layers_before = std::fs::read_dir(tmp.path().join("store/layers"))
        .unwrap()
        .count();
    let reference = format!("{}/test/busybox:1", registry.addr);
    let (result, events) = pull_collect(&store, &reference, &PullOptions::default());
    let pulled = result.unwrap();
    assert_eq!(statuses(&events), vec![LayerStatus::AlreadyExists]);
    assert_eq!(pulled.image.id, store.resolve("busybox").unwrap().id);
    let layers_after = std::fs::read_dir(tmp.path().join("store/layers"))
        .unwrap()
        .count();
    assert_eq!(layers_before, layers_after);
}

#[test]
fn basic_auth_uses_config_json_and_reports_bad_credentials() {
    let auth = Auth::Basic {
        user: "alice".into(),
        password: "s3cret".into(),
    };
    let Some((registry, tmp)) = registry_with_busybox(auth, Some("alice:s3cret")) else {
        return;
    };
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let reference = format!("{}/test/busybox:1", registry.addr);
    let before = common::snapshot(&tmp.path().join("store"));

    let (result, _) = pull_collect(&store, &reference, &PullOptions::default());
    let err = result.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("no credentials"), "{err}");

    let wrong = PullOptions {
        credentials: Some(Credentials {
            username: "alice".into(),
            password: "wrong".into(),
        }),
        ..Default::default()
    };
    let (result, _) = pull_collect(&store, &reference, &wrong);
    let err = result.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert_eq!(common::snapshot(&tmp.path().join("store")), before);

    let config = tmp.path().join("config.json");
    let auth = base64_encode(b"alice:s3cret");
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.addr),
    )
    .unwrap();
    let good = PullOptions {
        auth_config_path: Some(config),
        ..Default::default()
    };
    let (result, _) = pull_collect(&store, &reference, &good);
    assert!(result.unwrap().image.layer_dirs[0]
        .join("bin/busybox")
        .is_file());
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn corrupted_blob_fails_with_a_digest_error_and_leaves_the_store_alone() {
    let Some((registry, tmp)) = registry_with_busybox(Auth::Anonymous, None) else {
        return;
    };
    let digest = layer_digest(&registry, "test/busybox", "1");
    let data = registry.blob_data(digest.strip_prefix("sha256:").unwrap());
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let before = common::snapshot(&root);
    let reference = format!("{}/test/busybox:1", registry.addr);
    let (result, _) = pull_collect(&store, &reference, &PullOptions::default());
    let err = result.unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&digest), "{err}");
    assert_eq!(common::snapshot(&root), before);
    assert!(matches!(
        store.resolve(&reference),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn resumes_a_partial_download_from_tmp() {
    let Some((registry, tmp)) = registry_with_busybox(Auth::Anonymous, None) else {
        return;
    };
    let digest = layer_digest(&registry, "test/busybox", "1");
    let hex = digest.strip_prefix("sha256:").unwrap();
    let blob = std::fs::read(registry.blob_data(hex)).unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let downloads = root.join("tmp/downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let partial = downloads.join(format!("{hex}.partial"));
    let reference = format!("{}/test/busybox:1", registry.addr);

    // A partial file with wrong bytes: only a resumed download would keep
    // them, so the digest check fails (and the file is emptied).
    let mut garbage = vec![0u8; blob.len() / 2];
    garbage[0] = 1;
    std::fs::write(&partial, &garbage).unwrap();
    let (result, events) = pull_collect(&store, &reference, &PullOptions::default());
    assert!(
        matches!(result, Err(ImageError::DigestMismatch { .. })),
        "{result:?}"
    );
    let first = events
        .iter()
        .find(|e| e.status == LayerStatus::Downloading)
        .unwrap();
    assert_eq!(
        first.current,
        Some(garbage.len() as u64),
        "resumed at the partial size"
    );
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 0);

    // The right first half: the pull resumes and succeeds.
    std::fs::write(&partial, &blob[..blob.len() / 2]).unwrap();
    let (result, _) = pull_collect(&store, &reference, &PullOptions::default());
    result.unwrap();
    assert!(
        !partial.exists(),
        "the finished download moved into the store"
    );
}

#[test]
fn unknown_repository_or_tag_is_not_found() {
    let Some((registry, tmp)) = registry_with_busybox(Auth::Anonymous, None) else {
        return;
    };
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    for reference in [
        format!("{}/test/nothing:1", registry.addr),
        format!("{}/test/busybox:nope", registry.addr),
    ] {
        let (result, _) = pull_collect(&store, &reference, &PullOptions::default());
        assert!(
            matches!(result, Err(ImageError::NotFound(_))),
            "{reference}: {result:?}"
        );
    }
}

/// An image whose single layer holds `/arch` = `arch`; pushed by digest.
fn push_arch_image(registry: &Registry, repo: &str, arch: &str) -> (String, usize) {
    let mut layer = common::RawTar::new();
    layer.file("arch", arch.as_bytes());
    let layer = layer.finish();
    let diff_id = format!("sha256:{}", common::sha256_hex(&layer));
    let gz = common::gzip(&layer);
    let layer_digest = registry.push_blob(repo, &gz);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": { "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    }))
    .unwrap();
    let config_digest = registry.push_blob(repo, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": gz.len() }],
    }))
    .unwrap();
    let digest = common::sha256_hex(&manifest);
    registry.push_manifest(
        repo,
        &format!("sha256:{digest}"),
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
    (format!("sha256:{digest}"), manifest.len())
}

#[test]
fn multi_platform_index_picks_the_platform() {
    if !common::require_root() {
        return;
    }
    let Some(registry) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let repo = "test/multi";
    let arm = push_arch_image(&registry, repo, "arm64");
    let amd = push_arch_image(&registry, repo, "amd64");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm.0, "size": arm.1, "platform": { "os": "linux", "architecture": "arm64" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd.0, "size": amd.1, "platform": { "os": "linux", "architecture": "amd64" } },
        ],
    }))
    .unwrap();
    let index_digest =
        registry.push_manifest(repo, "1", "application/vnd.oci.image.index.v1+json", &index);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let reference = format!("{}/{repo}:1", registry.addr);
    let read_arch =
        |dirs: &[std::path::PathBuf]| std::fs::read_to_string(dirs[0].join("arch")).unwrap();

    let (result, _) = pull_collect(&store, &reference, &PullOptions::default());
    let pulled = result.unwrap();
    assert_eq!(pulled.image.architecture, "amd64");
    assert_eq!(read_arch(&pulled.image.layer_dirs), "amd64");
    assert_eq!(
        pulled.digest, index_digest,
        "the repo digest is the index's"
    );

    let arm_opts = PullOptions {
        platform: Some("linux/arm64".parse().unwrap()),
        ..Default::default()
    };
    let (result, _) = pull_collect(&store, &reference, &arm_opts);
    let pulled = result.unwrap();
    assert_eq!(pulled.image.architecture, "arm64");
    assert_eq!(read_arch(&pulled.image.layer_dirs), "arm64");

    let s390 = PullOptions {
        platform: Some("linux/s390x".parse().unwrap()),
        ..Default::default()
    };
    let (result, _) = pull_collect(&store, &reference, &s390);
    let err = result.unwrap_err();
    assert!(
        matches!(err, ImageError::NotFound(_)) && err.to_string().contains("linux/s390x"),
        "{err}"
    );
}
