//! `ImageStore::save`: docker-archive and OCI layout round trips, and the
//! real `dockerd` as the peer (loads what we save, saves what we load).

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmrun_images::{ImageStore, SaveFormat};

/// Every regular file of a tar, by path.
fn tar_files(path: &Path) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut archive = tar::Archive::new(File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            assert!(
                out.insert(name.clone(), data).is_none(),
                "{name} written twice"
            );
        }
    }
    out
}

fn loaded_busybox(dir: &Path) -> Option<(ImageStore, String)> {
    if !common::require_root() {
        return None;
    }
    let archive = common::make_busybox(dir, "oci")?;
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let loaded = store.load(File::open(archive).unwrap()).unwrap();
    Some((store, loaded[0].id.clone()))
}

#[test]
fn docker_archive_round_trips_with_uncompressed_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((store, id)) = loaded_busybox(tmp.path()) else {
        return;
    };
    store.tag("busybox", "other:1").unwrap();
    let out = tmp.path().join("saved.tar");
    store
        .save(
            &["busybox", "other:1", &id[7..19]],
            SaveFormat::DockerArchive,
            File::create(&out).unwrap(),
        )
        .unwrap();
    let files = tar_files(&out);
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let entries = manifest.as_array().unwrap();
    assert_eq!(entries.len(), 1, "one image named three ways: {manifest}");
    assert_eq!(
        entries[0]["RepoTags"],
        serde_json::json!(["busybox:latest", "other:1"])
    );
    assert_eq!(entries[0]["Config"], format!("{}.json", &id[7..]));
    let image = store.resolve("busybox").unwrap();
    let diff_ids = image.config.rootfs().diff_ids();
    for (layer, diff_id) in entries[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(diff_ids)
    {
        let data = &files[layer.as_str().unwrap()];
        assert_eq!(
            format!("sha256:{}", common::sha256_hex(data)),
            *diff_id,
            "layer.tar is the uncompressed layer"
        );
    }
    let repositories: serde_json::Value = serde_json::from_slice(&files["repositories"]).unwrap();
    assert!(
        repositories["busybox"]["latest"].is_string(),
        "{repositories}"
    );

    let fresh = ImageStore::open(&tmp.path().join("fresh")).unwrap();
    let loaded = fresh.load(File::open(&out).unwrap()).unwrap();
    assert!(loaded.iter().all(|l| l.id == id), "{loaded:?}");
    assert_eq!(fresh.resolve("other:1").unwrap().id, id);
}

#[test]
fn oci_layout_round_trips_with_unchanged_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((store, id)) = loaded_busybox(tmp.path()) else {
        return;
    };
    let out = tmp.path().join("saved-oci.tar");
    store
        .save(
            &["busybox"],
            SaveFormat::OciLayout,
            File::create(&out).unwrap(),
        )
        .unwrap();
    let files = tar_files(&out);
    assert!(files.contains_key("oci-layout"));
    for (name, data) in &files {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            assert_eq!(common::sha256_hex(data), hex, "blob {name} kept its digest");
        }
    }
    assert!(files.contains_key(&format!("blobs/sha256/{}", &id[7..])));
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let annotations = &index["manifests"][0]["annotations"];
    assert_eq!(annotations["org.opencontainers.image.ref.name"], "latest");
    assert_eq!(
        annotations["io.containerd.image.name"],
        "docker.io/library/busybox:latest"
    );

    let fresh = ImageStore::open(&tmp.path().join("fresh")).unwrap();
    let loaded = fresh.load(File::open(&out).unwrap()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, id);
    assert_eq!(loaded[0].reference, "busybox:latest");

    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skipping the skopeo check: skopeo is not installed");
        return;
    }
    let inspect = Command::new("skopeo")
        .arg("inspect")
        .arg("--raw")
        .arg(format!("oci-archive:{}", out.display()))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let raw: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(raw["config"]["digest"], id);
}

#[test]
fn unknown_reference_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let mut out = Vec::new();
    let err = store
        .save(&["nope"], SaveFormat::DockerArchive, &mut out)
        .unwrap_err();
    assert!(
        matches!(err, vmrun_images::ImageError::NotFound(_)),
        "{err}"
    );
    assert!(out.is_empty());
    assert!(store.save(&[], SaveFormat::OciLayout, &mut out).is_err());
}

/// A private dockerd (own socket, data root, exec root, pidfile); stopped on drop.
struct Dockerd {
    child: std::process::Child,
    socket: String,
}

impl Dockerd {
    fn start(dir: &Path) -> Option<Self> {
        if Command::new("dockerd").arg("--version").output().is_err() {
            vmrun_test_skip::report(format_args!(
                "dockerd is not installed (apt-get install docker.io)"
            ));
            return None;
        }
        let socket = dir.join("docker.sock");
        let log = File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd {
            child,
            socket: format!("unix://{}", socket.display()),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if d.docker(&["version"]).status.success() {
                return Some(d);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let log = std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
        vmrun_test_skip::report(format_args!(
            "dockerd did not start: {}",
            log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        ));
        None
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its own containerd child.
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn dockerd_runs_what_we_save_and_we_load_what_it_saves() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((store, id)) = loaded_busybox(tmp.path()) else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("vmrun-dockerd-")
        .tempdir_in("/tmp")
        .unwrap();
    let Some(dockerd) = Dockerd::start(dir.path()) else {
        return;
    };
    let ours = tmp.path().join("ours.tar");
    store
        .save(
            &["busybox"],
            SaveFormat::DockerArchive,
            File::create(&ours).unwrap(),
        )
        .unwrap();
    let load = dockerd.docker(&["load", "-i", ours.to_str().unwrap()]);
    assert!(
        load.status.success(),
        "docker load: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let inspect = dockerd.docker(&["image", "inspect", "-f", "{{.Id}}", "busybox:latest"]);
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        id,
        "dockerd keeps the image id"
    );
    let run = dockerd.docker(&["run", "--rm", "--net=none", "busybox", "echo", "ok"]);
    assert!(
        run.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "ok");

    // And back: what dockerd saves, we load (under another name, into a fresh store).
    let tag = dockerd.docker(&["tag", "busybox", "example.com/team/box:v2"]);
    assert!(tag.status.success());
    let theirs = tmp.path().join("theirs.tar");
    let save = dockerd.docker(&[
        "save",
        "-o",
        theirs.to_str().unwrap(),
        "example.com/team/box:v2",
    ]);
    assert!(
        save.status.success(),
        "docker save: {}",
        String::from_utf8_lossy(&save.stderr)
    );
    drop(dockerd);
    let fresh = ImageStore::open(&tmp.path().join("fresh")).unwrap();
    let loaded = fresh.load(File::open(&theirs).unwrap()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].reference, "example.com/team/box:v2");
    assert_eq!(loaded[0].id, id);
    let image = fresh.resolve("example.com/team/box:v2").unwrap();
    assert!(image
        .layer_dirs
        .iter()
        .all(|d| d.join("bin").exists() || d.exists()));
}
