//! `ImageStore::push` against a real registry (Debian's `docker-registry`) on 127.0.0.1:
//! round trips through a fresh store, chunked uploads, "Layer already exists",
//! cross-repository mounts, basic auth, and the errors.

mod common;

use std::cell::RefCell;
use std::fs::File;

use common::registry::{free_port, Auth, Registry};
use vmrun_images::registry::Credentials;
use vmrun_images::{
    ImageError, ImageStore, PullOptions, PushOptions, PushProgress, PushStatus, PushedImage,
};

/// A store holding the busybox image (loaded from the installer's OCI archive)
/// and that archive's manifest digest; `None` (reason printed) when something is missing.
fn store_with_busybox(tmp: &tempfile::TempDir) -> Option<(ImageStore, String)> {
    if !common::require_root() {
        return None;
    }
    let archive = common::make_busybox(tmp.path(), "oci")?;
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    store.load(File::open(&archive).unwrap()).unwrap();
    let files = common::read_tar(&std::fs::read(&archive).unwrap());
    let index = &files.iter().find(|(p, _)| p == "index.json").unwrap().1;
    let index: serde_json::Value = serde_json::from_slice(index).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    Some((store, digest))
}

fn push_collect(
    store: &ImageStore,
    reference: &str,
    opts: &PushOptions,
) -> (Result<PushedImage, ImageError>, Vec<PushProgress>) {
    let events = RefCell::new(Vec::new());
    let result = store.push(reference, opts, &|p| events.borrow_mut().push(p));
    (result, events.into_inner())
}

fn statuses(events: &[PushProgress]) -> Vec<PushStatus> {
    events.iter().map(|e| e.status.clone()).collect()
}

/// Pulls `reference` into a fresh store under `tmp` and returns the pull's digest and image id.
fn pull_fresh(
    tmp: &tempfile::TempDir,
    name: &str,
    reference: &str,
    opts: &PullOptions,
) -> (String, String) {
    let store = ImageStore::open(&tmp.path().join(name)).unwrap();
    let pulled = store.pull(reference, opts, &|_| {}).unwrap();
    assert!(pulled.image.layer_dirs[0].join("bin/busybox").is_file());
    assert_eq!(store.resolve(reference).unwrap().id, pulled.image.id);
    (pulled.digest, pulled.image.id)
}

fn registry_requests(registry: &Registry, needle: &str) -> Vec<String> {
    registry
        .log()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn pushes_a_loaded_image_that_pulls_back_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((store, manifest_digest)) = store_with_busybox(&tmp) else {
        return;
    };
    let Some(registry) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let reference = format!("{}/test/busybox:1", registry.addr);
    store.tag("busybox", &reference).unwrap();
    let (result, events) = push_collect(&store, &reference, &PushOptions::default());
    let pushed = result.unwrap();
    assert_eq!(pushed.reference, reference);
    assert_eq!(pushed.tag, "1");
    // The stored manifest went up byte for byte.
    assert_eq!(pushed.digest, manifest_digest);
    assert_eq!(pushed.image_id, store.resolve("busybox").unwrap().id);
    let s = statuses(&events);
    for wanted in [
        PushStatus::Preparing,
        PushStatus::Pushing,
        PushStatus::Pushed,
    ] {
        assert!(s.contains(&wanted), "{wanted} missing from {s:?}");
    }
    assert_eq!(events[0].id.len(), 12);
    let last = events
        .iter()
        .rfind(|e| e.status == PushStatus::Pushing)
        .unwrap();
    assert_eq!(last.current, last.total);

    let (digest, id) = pull_fresh(&tmp, "fresh", &reference, &PullOptions::default());
    assert_eq!(digest, manifest_digest);
    assert_eq!(id, pushed.image_id);

    // Again: every layer is already there, same manifest.
    let (again, events) = push_collect(&store, &reference, &PushOptions::default());
    assert_eq!(again.unwrap().digest, manifest_digest);
    let s = statuses(&events);
    assert!(s.contains(&PushStatus::AlreadyExists), "{s:?}");
    assert!(!s.contains(&PushStatus::Pushing), "{s:?}");

    // `skopeo inspect` (another client) sees the same manifest digest.
    if common::registry::have_tools(&["skopeo"]) {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            format!("sha256:{}", common::sha256_hex(&out.stdout)),
            manifest_digest
        );
    }
}

#[test]
fn large_blobs_go_up_in_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((store, manifest_digest)) = store_with_busybox(&tmp) else {
        return;
    };
    let Some(registry) = Registry::start_with_access_log(Auth::Anonymous) else {
        return;
    };
    let reference = format!("{}/test/chunked:1", registry.addr);
    store.tag("busybox", &reference).unwrap();
    let opts = PushOptions {
        chunk_size: 64 * 1024,
        ..PushOptions::default()
    };
    let (result, events) = push_collect(&store, &reference, &opts);
    assert_eq!(result.unwrap().digest, manifest_digest);
    let patches = registry_requests(&registry, "\"PATCH /v2/test/chunked/blobs/uploads/");
    assert!(
        patches.len() > 2,
        "expected several PATCH requests:\n{}",
        registry.log()
    );
    let pushing: Vec<_> = events
        .iter()
        .filter(|e| e.status == PushStatus::Pushing)
        .collect();
    // 0, then one event per chunk.
    assert_eq!(pushing.len(), patches.len() + 1, "{events:?}");
    assert!(pushing.windows(2).all(|w| w[0].current < w[1].current));
    let (digest, id) = pull_fresh(&tmp, "fresh", &reference, &PullOptions::default());
    assert_eq!(digest, manifest_digest);
    assert_eq!(id, store.resolve("busybox").unwrap().id);
}

#[test]
fn blobs_are_mounted_from_sibling_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((store, _)) = store_with_busybox(&tmp) else {
        return;
    };
    let Some(registry) = Registry::start_with_access_log(Auth::Anonymous) else {
        return;
    };
    let first = format!("{}/test/a:1", registry.addr);
    let second = format!("{}/test/b:1", registry.addr);
    store.tag("busybox", &first).unwrap();
    store.tag("busybox", &second).unwrap();
    push_collect(&store, &first, &PushOptions::default())
        .0
        .unwrap();
    let (result, events) = push_collect(&store, &second, &PushOptions::default());
    result.unwrap();
    let s = statuses(&events);
    assert!(
        s.contains(&PushStatus::MountedFrom("test/a".into())),
        "{s:?}"
    );
    assert!(!s.contains(&PushStatus::Pushing), "{s:?}");
    let mounts = registry_requests(&registry, "\"POST /v2/test/b/blobs/uploads/?");
    assert!(
        mounts
            .iter()
            .any(|l| l.contains("mount=sha256") && l.contains("from=test")),
        "no mount request in the log:\n{}",
        registry.log()
    );
    pull_fresh(&tmp, "fresh", &second, &PullOptions::default());

    // A store that pulled from test/a mounts from there too.
    let puller = ImageStore::open(&tmp.path().join("puller")).unwrap();
    puller
        .pull(&first, &PullOptions::default(), &|_| {})
        .unwrap();
    let third = format!("{}/test/c:1", registry.addr);
    puller.tag(&first, &third).unwrap();
    let events = RefCell::new(Vec::new());
    puller
        .push(&third, &PushOptions::default(), &|p| {
            events.borrow_mut().push(p)
        })
        .unwrap();
    let s = statuses(&events.into_inner());
    assert!(
        s.contains(&PushStatus::MountedFrom("test/a".into())),
        "{s:?}"
    );
}

#[test]
fn basic_auth_registry_needs_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((store, manifest_digest)) = store_with_busybox(&tmp) else {
        return;
    };
    let Some(registry) = Registry::start(Auth::Basic {
        user: "alice".into(),
        password: "s3cret".into(),
    }) else {
        return;
    };
    let reference = format!("{}/test/private:1", registry.addr);
    store.tag("busybox", &reference).unwrap();

    let (result, _) = push_collect(&store, &reference, &PushOptions::default());
    let err = result.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&registry.addr), "{err}");

    let creds = |password: &str| PushOptions {
        credentials: Some(Credentials {
            username: "alice".into(),
            password: password.into(),
        }),
        ..PushOptions::default()
    };
    let (result, _) = push_collect(&store, &reference, &creds("wrong"));
    assert!(
        matches!(result, Err(ImageError::Unauthorized { .. })),
        "{result:?}"
    );

    // Right credentials, from a docker config.json this time.
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#,
            registry.addr
        ),
    )
    .unwrap();
    let from_file = PushOptions {
        auth_config_path: Some(config),
        ..PushOptions::default()
    };
    let (result, _) = push_collect(&store, &reference, &from_file);
    assert_eq!(result.unwrap().digest, manifest_digest);
    let (result, _) = push_collect(&store, &reference, &creds("s3cret"));
    assert_eq!(result.unwrap().digest, manifest_digest);
    let pull = PullOptions {
        credentials: creds("s3cret").credentials,
        ..PullOptions::default()
    };
    pull_fresh(&tmp, "fresh", &reference, &pull);
}

#[test]
fn unknown_images_and_digest_references_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((store, _)) = store_with_busybox(&tmp) else {
        return;
    };
    // No registry needed: these fail before any request.
    let addr = format!("127.0.0.1:{}", free_port());
    let (result, events) = push_collect(
        &store,
        &format!("{addr}/nothing:1"),
        &PushOptions::default(),
    );
    let err = result.unwrap_err();
    assert!(matches!(err, ImageError::NotFound(_)), "{err}");
    assert!(
        err.to_string().contains(&format!("{addr}/nothing:1")),
        "{err}"
    );
    assert!(events.is_empty());

    store.tag("busybox", &format!("{addr}/x:1")).unwrap();
    let (result, _) = push_collect(&store, &format!("{addr}/x:2"), &PushOptions::default());
    assert!(matches!(result, Err(ImageError::NotFound(_))), "{result:?}");

    let by_digest = format!("{addr}/x@sha256:{}", "a".repeat(64));
    let (result, _) = push_collect(&store, &by_digest, &PushOptions::default());
    assert!(
        matches!(result, Err(ImageError::InvalidReference { .. })),
        "{result:?}"
    );
}

#[test]
fn a_registry_that_is_down_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((store, _)) = store_with_busybox(&tmp) else {
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let reference = format!("{addr}/test/busybox:1");
    store.tag("busybox", &reference).unwrap();
    let (result, events) = push_collect(&store, &reference, &PushOptions::default());
    let err = result.unwrap_err();
    assert!(matches!(err, ImageError::Registry { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&addr), "{message}");
    assert!(message.to_lowercase().contains("connect"), "{message}");
    assert!(events.is_empty(), "{events:?}");
}
