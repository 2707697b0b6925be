//! `vmrun save` (docker-archive and OCI layout) and the API's `GET
//! /images/{name}/get` / `GET /images/get?names=…`: what they write is a
//! loadable archive of the right format; unknown images are a 404 naming them.

use std::path::Path;

use vmrun_e2e::{require_root, ApiResponse, Daemon};

/// The entry names of an (uncompressed, ustar) tar archive.
fn tar_names(tar: &[u8]) -> Vec<String> {
    let field = |b: &[u8]| {
        let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let mut names = Vec::new();
    let mut at = 0;
    while let Some(header) = tar.get(at..at + 512) {
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let size = u64::from_str_radix(field(&header[124..136]).trim(), 8)
            .unwrap_or_else(|e| panic!("bad size in the tar header at {at}: {e}"));
        let prefix = field(&header[345..500]);
        let name = field(&header[..100]);
        names.push(if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        });
        at += 512 + size.div_ceil(512) as usize * 512;
    }
    assert!(!names.is_empty(), "not a tar archive");
    names
}

fn has(names: &[String], name: &str) -> bool {
    names.iter().any(|n| n.trim_start_matches("./") == name)
}

fn assert_oci_layout(names: &[String], what: &str) {
    assert!(has(names, "index.json"), "{what}: {names:?}");
    assert!(has(names, "oci-layout"), "{what}: {names:?}");
    assert!(!has(names, "manifest.json"), "{what}: {names:?}");
}

fn assert_docker_archive(names: &[String], what: &str) {
    assert!(has(names, "manifest.json"), "{what}: {names:?}");
}

fn assert_tar_response(r: &ApiResponse, what: &str) -> Vec<String> {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/x-tar"),
        "{what}"
    );
    tar_names(&r.body)
}

#[test]
fn save_oci_loads_into_a_fresh_daemon_and_runs() {
    if !require_root() {
        return;
    }
    let keep = tempfile_dir();
    let oci = keep.join("busybox-oci.tar");
    let docker = keep.join("busybox-docker.tar");
    {
        let d = Daemon::start();
        let oci_arg = oci.to_str().unwrap();
        d.vmrun(&["save", "--format", "oci", "-o", oci_arg, "busybox"])
            .ok();
        assert_oci_layout(
            &tar_names(&std::fs::read(&oci).unwrap()),
            "save --format oci",
        );
        d.vmrun(&["save", "-o", docker.to_str().unwrap(), "busybox"])
            .ok();
        assert_docker_archive(&tar_names(&std::fs::read(&docker).unwrap()), "save");
        // To stdout: the same bytes as to the file (the store is unchanged).
        let out = d
            .vmrun_cmd(&["save", "--format", "oci", "busybox"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.stdout,
            std::fs::read(&oci).unwrap(),
            "stdout differs from -o"
        );
        // Unknown image: exit 1 naming it, and no file left behind.
        let missing = keep.join("missing.tar");
        let failed = d.vmrun(&[
            "save",
            "--format",
            "oci",
            "-o",
            missing.to_str().unwrap(),
            "nothing:here",
        ]);
        failed.code_is(1);
        assert!(failed.stderr.contains("nothing:here"), "{failed}");
        assert!(!missing.exists());
        assert_eq!(leftovers(&keep), 2, "only the two archives remain");
        let bad = d.vmrun(&[
            "save",
            "--format",
            "zip",
            "-o",
            missing.to_str().unwrap(),
            "busybox",
        ]);
        bad.code_is(1);
        assert!(bad.stderr.contains("zip"), "{bad}");
    }
    for (tar, format) in [(&oci, "oci"), (&docker, "docker")] {
        let d = Daemon::start_empty();
        d.vmrun(&["load", "-i", tar.to_str().unwrap()]).ok();
        let run = d.vmrun(&["run", "--rm", "busybox", "echo", "loaded"]);
        run.ok();
        assert_eq!(run.stdout, "loaded\n", "{format}: {run}");
    }
    let _ = std::fs::remove_dir_all(&keep);
}

#[test]
fn image_get_routes_serve_both_formats_and_404_unknown_names() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let docker = d.api("GET", "/v1.45/images/busybox/get", None);
    assert_docker_archive(
        &assert_tar_response(&docker, "/images/busybox/get"),
        "docker",
    );
    let docker = d.api("GET", "/v1.45/images/get?names=busybox:latest", None);
    assert_docker_archive(&assert_tar_response(&docker, "/images/get"), "docker");
    let oci = d.api("GET", "/v1.45/images/get?names=busybox&format=oci", None);
    assert_oci_layout(&assert_tar_response(&oci, "/images/get oci"), "oci");
    let oci = d.api("GET", "/v1.45/images/busybox/get?format=oci", None);
    assert_oci_layout(&assert_tar_response(&oci, "/images/busybox/get oci"), "oci");

    for path in [
        "/v1.45/images/nothing/get",
        "/v1.45/images/get?names=busybox&names=nothing",
        "/v1.45/images/get?names=nothing&format=oci",
    ] {
        let r = d.api("GET", path, None);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.json()["message"], "No such image: nothing", "{path}");
    }
    let r = d.api("GET", "/v1.45/images/get?names=busybox&format=zip", None);
    assert_eq!(r.status, 400, "{}", r.text());
}

/// A private directory for archives that outlive one daemon.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = nix::unistd::mkdtemp("/tmp/vme-save-XXXXXX").expect("mkdtemp");
    Path::new(&dir).to_path_buf()
}

/// How many entries `dir` holds (temporary save files included).
fn leftovers(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}
