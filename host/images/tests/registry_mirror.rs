//! Docker Hub mirrors: a `docker.io` pull served by a local registry (Debian's
//! `docker-registry`) listed as a mirror, after mirrors that fail are skipped.
//! There is no internet here, so Docker Hub itself can serve nothing.

mod common;

use common::registry::{free_port, have_tools, Auth, Registry};
use vmrun_images::{ImageError, ImageStore, PullOptions, RegistryHosts};

/// A mirror holding `library/busybox:latest`, an empty one, and a temp dir.
fn mirrors() -> Option<(Registry, Registry, tempfile::TempDir)> {
    if !common::require_root() || !have_tools(&["skopeo"]) {
        return None;
    }
    let good = Registry::start(Auth::Anonymous)?;
    let empty = Registry::start(Auth::Anonymous)?;
    let tmp = tempfile::tempdir().unwrap();
    let archive = common::make_busybox(tmp.path(), "oci")?;
    good.skopeo_push(&archive, "library/busybox:latest", None);
    Some((good, empty, tmp))
}

#[test]
fn pulls_docker_hub_images_from_the_first_mirror_that_has_them() {
    let Some((good, empty, tmp)) = mirrors() else {
        return;
    };
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let opts = PullOptions {
        hosts: RegistryHosts {
            // Unreachable, then without the image, then the one with it.
            mirrors: vec![dead, empty.addr.clone(), format!("http://{}/", good.addr)],
            ..Default::default()
        },
        ..Default::default()
    };
    let pulled = store.pull("busybox", &opts, &|_| {}).unwrap();
    assert_eq!(pulled.reference, "busybox:latest");
    assert_eq!(pulled.image.repo_tags, vec!["busybox:latest".to_owned()]);
    assert_eq!(
        pulled.image.repo_digests,
        vec![format!("busybox@{}", pulled.digest)]
    );
    assert!(pulled.image.layer_dirs[0].join("bin/busybox").is_file());
    assert_eq!(
        store
            .resolve("docker.io/library/busybox:latest")
            .unwrap()
            .id,
        pulled.image.id
    );
}

#[test]
fn mirrors_serve_only_docker_hub_and_fall_back_to_it() {
    let Some((good, _empty, tmp)) = mirrors() else {
        return;
    };
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let opts = PullOptions {
        hosts: RegistryHosts {
            mirrors: vec![good.addr.clone()],
            ..Default::default()
        },
        ..Default::default()
    };
    // A tag the mirror lacks: it is skipped and Docker Hub (unreachable here) is asked.
    let err = store.pull("busybox:missing", &opts, &|_| {}).unwrap_err();
    assert!(matches!(err, ImageError::Registry { .. }), "{err}");
    assert!(err.to_string().contains("docker.io"), "{err}");
    // A reference on another registry never goes to the mirror.
    let other = format!("127.0.0.1:{}/library/busybox:latest", free_port());
    let err = store.pull(&other, &opts, &|_| {}).unwrap_err();
    assert!(
        err.to_string().contains(&other[..other.find('/').unwrap()]),
        "{err}"
    );
    assert!(store.resolve("busybox").is_err());
}
