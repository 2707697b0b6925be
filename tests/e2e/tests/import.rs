//! `docker import` and `vmrun import` through vmrund: a root-filesystem
//! tarball (Debian's static busybox) becomes a one-layer image that runs, with
//! `--change` instructions in its config and `--message` in its history.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vmrun_e2e::{require_root, require_tool, run_with_timeout, Daemon};

const BUSYBOX: &str = "/bin/busybox";

/// `dir/rootfs.tgz`: bin/busybox and bin/sh -> busybox.
fn rootfs_tarball(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let tarball = dir.join("rootfs.tgz");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-czf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar failed");
    tarball
}

#[test]
fn imported_tarballs_run_with_their_changes() {
    if !require_root() || !require_tool("docker") || !require_tool("tar") {
        return;
    }
    if !Path::new(BUSYBOX).exists() {
        vmrun_test_skip::report(format_args!(
            "{BUSYBOX} is missing (apt-get install busybox-static)"
        ));
        return;
    }
    let d = Daemon::start_empty();
    let tarball = rootfs_tarball(d.dir());
    let tarball = tarball.to_str().unwrap();

    // The docker CLI: file, changes, message, tag.
    let out = run_with_timeout(
        d.docker_cmd(&[
            "import",
            "-c",
            r#"CMD ["/bin/sh", "-c", "echo imported $GREETING"]"#,
            "-c",
            "ENV GREETING=hi",
            "-m",
            "from e2e",
            tarball,
            "e2e/imported:1",
        ]),
        None,
        Duration::from_secs(60),
    );
    out.ok();
    let id = out.stdout.trim().to_owned();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    let run = d.docker(&["run", "--rm", "e2e/imported:1"]);
    run.ok();
    assert_eq!(run.stdout, "imported hi\n", "{run}");
    let inspect = d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{json .Config.Cmd}}",
        "e2e/imported:1",
    ]);
    inspect.ok();
    assert_eq!(
        inspect.stdout.trim(),
        format!(r#"{id} ["/bin/sh","-c","echo imported $GREETING"]"#),
        "{inspect}"
    );
    let history = d.docker(&["history", "--format", "{{.Comment}}", "e2e/imported:1"]);
    history.ok();
    assert_eq!(history.stdout, "from e2e\n", "{history}");

    // vmrun import from standard input, untagged then tagged.
    let bytes = std::fs::read(tarball).unwrap();
    let out = run_with_timeout(
        d.vmrun_cmd(&["import", "-", "e2e/stdin"]),
        Some(&bytes),
        Duration::from_secs(60),
    );
    out.ok();
    assert!(out.stdout.trim().starts_with("sha256:"), "{out}");
    let run = d.vmrun(&["run", "--rm", "e2e/stdin", "/bin/busybox", "echo", "ok"]);
    run.ok();
    assert_eq!(run.stdout, "ok\n", "{run}");
    let history = d.vmrun(&["history", "--format", "{{.Comment}}", "e2e/stdin"]);
    history.ok();
    assert_eq!(history.stdout, "Imported from -\n", "{history}");

    // Bad input: named, nothing stored.
    let images_before = d.vmrun(&["images", "-q"]).stdout;
    let not_tar = d.dir().join("not-a-tar.txt");
    std::fs::write(&not_tar, "hello").unwrap();
    let bad = d.vmrun(&["import", not_tar.to_str().unwrap(), "e2e/bad"]);
    bad.code_is(1);
    assert!(!bad.stderr.trim().is_empty(), "{bad}");
    let bad_change = d.vmrun(&["import", "-c", "RUN make", tarball, "e2e/bad"]);
    bad_change.code_is(1);
    assert!(
        bad_change
            .stderr
            .contains("run is not a valid change command"),
        "{bad_change}"
    );
    let url = d.vmrun(&["import", "http://example.invalid/rootfs.tgz"]);
    url.code_is(1);
    assert!(url.stderr.contains("not supported"), "{url}");
    assert_eq!(d.vmrun(&["images", "-q"]).stdout, images_before);
}
