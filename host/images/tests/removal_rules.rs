//! dockerd's `rmi` and `image prune` rules, container holds on layers, and disk usage
//! with shared layers counted once.

mod common;

use std::collections::HashSet;
use std::fs;

use vmrun_images::{ContainerUse, ImageError, ImageStore, PruneOptions, RemovedItem};

/// A layer with one file of `bytes` bytes.
fn layer(path: &str, bytes: usize) -> Vec<u8> {
    let mut tar = common::RawTar::new();
    tar.file(path, &vec![b'x'; bytes]);
    tar.finish()
}

/// A store with `a:1` = [base, a] and `b:1` = [base, b]; `base` is 1000 bytes, `a` 200, `b` 30.
fn two_images(tmp: &tempfile::TempDir) -> ImageStore {
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let base = layer("base.bin", 1000);
    store
        .load(&common::oci_layout("a:1", &[base.clone(), layer("a.bin", 200)])[..])
        .unwrap();
    store
        .load(&common::oci_layout("b:1", &[base, layer("b.bin", 30)])[..])
        .unwrap();
    store
}

fn user(store: &ImageStore, name: &str, container: &str, running: bool) -> ContainerUse {
    ContainerUse {
        id: container.repeat(64 / container.len()),
        image_id: store.resolve(name).unwrap().id,
        running,
    }
}

fn layer_count(store: &ImageStore) -> usize {
    fs::read_dir(store.root().join("layers")).unwrap().count()
}

#[test]
fn disk_usage_counts_shared_layers_once() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = two_images(&tmp);
    let usage = store.disk_usage();
    assert_eq!(usage.layers_size, 1000 + 200 + 30, "{usage:?}");
    let a = store.resolve("a:1").unwrap();
    let b = store.resolve("b:1").unwrap();
    let a_usage = usage.images.iter().find(|i| i.id == a.id).unwrap();
    let b_usage = usage.images.iter().find(|i| i.id == b.id).unwrap();
    assert_eq!((a_usage.size, a_usage.shared_size), (1200, 1000));
    assert_eq!((b_usage.size, b_usage.shared_size), (1030, 1000));
    // The shared layer is one directory on disk.
    assert_eq!(a.layer_dirs[0], b.layer_dirs[0]);
    assert_eq!(layer_count(&store), 3);
}

#[test]
fn rmi_by_name_of_an_image_a_stopped_container_uses() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = two_images(&tmp);
    let c = user(&store, "a:1", "c1", false);
    store.hold(&c.id, &c.image_id).unwrap();
    let a_dirs = store.resolve("a:1").unwrap().layer_dirs;

    let err = store
        .remove("a:1", false, std::slice::from_ref(&c))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImageError::Conflict(_)), "{msg}");
    assert!(
        msg.contains("unable to remove repository reference \"a:1\" (must force) - container c1c1c1c1c1c1 is using its referenced image"),
        "{msg}"
    );
    assert!(
        store.resolve("a:1").is_ok(),
        "a refused rmi changes nothing"
    );

    // Forced: the name and the image go, the container's layers stay.
    let removed = store.remove("a:1", true, std::slice::from_ref(&c)).unwrap();
    assert_eq!(removed[0], RemovedItem::Untagged("a:1".into()));
    assert!(
        removed.contains(&RemovedItem::Deleted(c.image_id.clone())),
        "{removed:?}"
    );
    assert!(store.resolve(&c.image_id).is_err());
    assert!(
        a_dirs.iter().all(|d| d.exists()),
        "held layers were deleted"
    );

    // They survive a reopen (garbage collection respects holds) ...
    drop(store);
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    assert!(a_dirs.iter().all(|d| d.exists()));
    // ... and go with the container; the base layer stays for b:1.
    store.release(&c.id).unwrap();
    assert!(!a_dirs[1].exists());
    assert!(a_dirs[0].exists(), "b:1 still uses the base layer");
    assert_eq!(layer_count(&store), 2);
}

#[test]
fn rmi_with_a_running_container() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = two_images(&tmp);
    let c = user(&store, "b:1", "r2", true);
    store.hold(&c.id, &c.image_id).unwrap();

    // By id: refused even with force.
    let err = store
        .remove(&c.image_id, true, std::slice::from_ref(&c))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("(cannot be forced) - image is being used by running container r2r2r2r2r2r2"),
        "{msg}"
    );
    // By name with force: untagged only, the image stays (dangling).
    let removed = store.remove("b:1", true, std::slice::from_ref(&c)).unwrap();
    assert_eq!(removed, vec![RemovedItem::Untagged("b:1".into())]);
    let image = store.resolve(&c.image_id).unwrap();
    assert!(image.repo_tags.is_empty());

    // Stopped now: by id without force is refused, with force it goes.
    let stopped = ContainerUse {
        running: false,
        ..c.clone()
    };
    let err = store
        .remove(&c.image_id, false, std::slice::from_ref(&stopped))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("(must be forced) - image is being used by stopped container"),
        "{err}"
    );
    let removed = store
        .remove(&c.image_id, true, std::slice::from_ref(&stopped))
        .unwrap();
    assert!(removed.contains(&RemovedItem::Deleted(c.image_id.clone())));
    assert!(image.layer_dirs.iter().all(|d| d.exists()), "still held");
}

#[test]
fn rmi_of_one_of_several_names_only_untags() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = two_images(&tmp);
    store.tag("a:1", "a:2").unwrap();
    let c = user(&store, "a:1", "c3", false);
    // Another name is left, so no force is needed even though a container uses it.
    assert_eq!(
        store
            .remove("a:1", false, std::slice::from_ref(&c))
            .unwrap(),
        vec![RemovedItem::Untagged("a:1".into())]
    );
    assert_eq!(store.resolve("a:2").unwrap().id, c.image_id);
}

#[test]
fn prune_removes_unused_images_only() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = two_images(&tmp);
    let a_id = store.resolve("a:1").unwrap().id;
    let b_id = store.resolve("b:1").unwrap().id;

    // Nothing dangling yet.
    let report = store.prune(&PruneOptions::default(), &[]).unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");

    // A dangling image: its last name removed (forced) while a container ran on it ...
    let c = user(&store, "a:1", "c4", true);
    store.hold(&c.id, &a_id).unwrap();
    store.remove("a:1", true, std::slice::from_ref(&c)).unwrap();
    assert!(store.resolve(&a_id).unwrap().repo_tags.is_empty());
    // ... is kept by prune while a container uses it, pruned once the container is gone.
    let report = store
        .prune(&PruneOptions::default(), std::slice::from_ref(&c))
        .unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    store.release(&c.id).unwrap();
    let report = store.prune(&PruneOptions::default(), &[]).unwrap();
    assert_eq!(
        report.deleted[0],
        RemovedItem::Deleted(a_id.clone()),
        "{report:?}"
    );
    assert_eq!(report.space_reclaimed, 200, "the base layer is b:1's too");
    assert!(store.resolve("b:1").is_ok());

    // `-a`: b:1 is used by a container, so it stays.
    let c = user(&store, "b:1", "c5", false);
    let report = store
        .prune(
            &PruneOptions {
                all: true,
                ..Default::default()
            },
            std::slice::from_ref(&c),
        )
        .unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    // A label filter that does not match keeps it too.
    let report = store
        .prune(
            &PruneOptions {
                all: true,
                labels: vec!["nosuch".into()],
                ..Default::default()
            },
            &[],
        )
        .unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    let report = store
        .prune(
            &PruneOptions {
                all: true,
                ..Default::default()
            },
            &[],
        )
        .unwrap();
    assert!(report
        .deleted
        .contains(&RemovedItem::Untagged("b:1".into())));
    assert!(report.deleted.contains(&RemovedItem::Deleted(b_id)));
    assert_eq!(report.space_reclaimed, 1030);
    assert_eq!(layer_count(&store), 0);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn retain_holders_drops_holds_of_vanished_containers() {
    if !common::require_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = two_images(&tmp);
    let c = user(&store, "a:1", "c6", false);
    store.hold(&c.id, &c.image_id).unwrap();
    store.remove("a:1", true, std::slice::from_ref(&c)).unwrap();
    assert_eq!(layer_count(&store), 3);
    let live: HashSet<String> = HashSet::from([c.id.clone()]);
    store.retain_holders(&live).unwrap();
    assert_eq!(layer_count(&store), 3, "a live container keeps its layers");
    store.retain_holders(&HashSet::new()).unwrap();
    assert_eq!(layer_count(&store), 2);
    assert!(matches!(
        store.hold("x", "sha256:nosuch"),
        Err(ImageError::NotFound(_))
    ));
}
