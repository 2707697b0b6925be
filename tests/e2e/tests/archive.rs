//! `docker cp` both ways, `docker diff` and `docker export` through the docker CLI,
//! compared with Debian's dockerd (the oracle): a file, a directory, a symlink (kept and
//! followed), into a running and a stopped container, with and without `-a`, a
//! directory replaced by a file (refused), a missing path; and paths that try to leave
//! the container (a symlink to `/`, `..`, an archive entry with `..`) staying inside it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vmrun_e2e::cp::{assert_same_lines, cp_scenario, listing, output};
use vmrun_e2e::{require_root, require_tool, run_with_timeout, Daemon, ReferenceDaemon};

/// Both daemons, or a visible skip.
fn pair() -> Option<(Daemon, ReferenceDaemon)> {
    if !require_root() || !require_tool("docker") || !require_tool("tar") {
        return None;
    }
    let ours = Daemon::start();
    match ReferenceDaemon::start() {
        Ok(oracle) => Some((ours, oracle)),
        Err(reason) => {
            vmrun_test_skip::report(&reason);
            None
        }
    }
}

#[test]
fn cp_matches_dockerd() {
    let Some((ours, oracle)) = pair() else { return };
    let work_ours = tempfile::tempdir().unwrap();
    let work_ref = tempfile::tempdir().unwrap();
    let got = cp_scenario(&|a| ours.docker_cmd(a), work_ours.path());
    let want = cp_scenario(&|a| oracle.docker_cmd(a), work_ref.path());
    assert_same_lines("vmrund", &got, "dockerd", &want);
    // The file is the container's, not the host's /etc/passwd.
    let (ok, tar, _) = output(ours.docker_cmd(&["run", "--rm", "busybox", "cat", "/etc/passwd"]));
    assert!(ok);
    assert!(!tar.is_empty());
}

#[test]
fn cp_stays_inside_the_container() {
    if !require_root() || !require_tool("docker") {
        return;
    }
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "esc",
        "busybox",
        "sh",
        "-c",
        "ln -s / /hostroot && ln -s ../../../../.. /up && touch /ready && sleep 600",
    ])
    .ok();
    vmrun_e2e::wait_for(Duration::from_secs(10), "the container's setup", || {
        d.docker(&["exec", "esc", "test", "-e", "/ready"])
            .success()
            .then_some(())
    });
    let marker = format!("vmrun-cp-escape-{}", std::process::id());
    let host_marker = Path::new("/tmp").join(&marker);
    let _ = std::fs::remove_file(&host_marker);
    std::fs::write("/tmp/vmrun-cp-host-only", "host secret").unwrap();

    // Reads through a symlink to "/" and through ".." get the container's files.
    for path in [
        "/hostroot/etc/passwd",
        "/up/etc/passwd",
        "/../../../etc/passwd",
        "/etc/../../etc/passwd",
    ] {
        let out = d.docker(&["cp", &format!("esc:{path}"), "-"]);
        out.ok();
        assert!(out.stdout.contains("root:x:0:0"), "{out}");
        assert!(
            !out.stdout.contains("vmrun") || !Path::new("/etc/passwd").exists(),
            "{out}"
        );
        let host = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        assert!(
            !out.stdout.contains(host.trim()) || host.trim().lines().count() < 2,
            "{out}"
        );
    }
    let out = d.docker(&["cp", "esc:/hostroot/tmp/vmrun-cp-host-only", "-"]);
    assert!(!out.success(), "a host file was read: {out}");
    assert!(out.stderr.contains("Could not find the file"), "{out}");

    // Writes through the same symlinks land in the container.
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join(&marker), "x").unwrap();
    std::fs::set_permissions(
        local.path().join(&marker),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let src = local.path().join(&marker);
    for dest in ["esc:/hostroot/tmp/", "esc:/up/tmp/", "esc:/../../tmp/"] {
        d.docker(&["cp", src.to_str().unwrap(), dest]).ok();
        assert!(!host_marker.exists(), "cp to {dest} wrote on the host");
    }
    d.docker(&["exec", "esc", "test", "-f", &format!("/tmp/{marker}")])
        .ok();

    // `cp -a` gives files the container user's owner, looked up in the container.
    d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "owned",
        "-u",
        "1000:1000",
        "busybox",
    ])
    .ok();
    d.docker(&["cp", "-a", src.to_str().unwrap(), "owned:/tmp/"])
        .ok();
    let (ok, tar, err) = output(d.docker_cmd(&["cp", &format!("owned:/tmp/{marker}"), "-"]));
    assert!(ok, "{err}");
    assert_eq!(
        listing(&tar),
        vec![format!("-rw-r--r-- 1000/1000 1 {marker}")]
    );
    d.docker(&["rm", "owned"]).ok();

    // An archive entry that climbs out of the destination is refused.
    let tar = vmrun_e2e::cp::raw_tar(&format!("../../../../../../tmp/{marker}"), b"x");
    let res = vmrun_e2e::api_request(
        &d.socket(),
        "PUT",
        "/containers/esc/archive?path=/etc",
        Some(&tar),
        Duration::from_secs(30),
    );
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(
        res.text().contains("outside of the destination"),
        "{}",
        res.text()
    );
    assert!(!host_marker.exists());
    let _ = std::fs::remove_file("/tmp/vmrun-cp-host-only");
    d.docker(&["rm", "-f", "esc"]).ok();
}

/// `docker diff` and `docker export | tar t` of the same changes.
fn diff_scenario(docker: &dyn Fn(&[&str]) -> Command) -> Vec<String> {
    let run = |args: &[&str]| run_with_timeout(docker(args), None, Duration::from_secs(120));
    run(&[
        "run",
        "--network",
        "none",
        "--name",
        "changed",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /new/deep && echo x > /new/deep/file && echo more >> /etc/group && rm /bin/true \
         && rm -rf /home && mkdir /home && touch /home/only && mkdir /tmp/t && ln -s /x /tmp/t/l",
    ])
    .ok();
    let mut seen = Vec::new();
    let diff = run(&["diff", "changed"]);
    diff.ok();
    // dockerd's order is its walk's (map) order: compare sorted.
    let mut lines: Vec<&str> = diff.stdout.lines().collect();
    lines.sort_by_key(|l| l.get(2..).unwrap_or_default().to_owned());
    seen.extend(lines.into_iter().map(|l| format!("diff: {l}")));
    let (ok, tar, err) = output(docker(&["export", "changed"]));
    seen.push(format!("export: {ok} {}", err.trim()));
    let mut names: Vec<String> = listing(&tar)
        .into_iter()
        .filter(|l| !l.ends_with(".dockerenv") && !l.contains(" dev/") && !l.contains(" etc/mtab"))
        .collect();
    names.sort();
    seen.push(format!("export entries: {}", names.len()));
    seen.extend(names.into_iter().filter(|l| {
        ["new/", "home/", "tmp/", "etc/group", "bin/true", "bin/sh "]
            .iter()
            .any(|p| l.contains(p))
    }));
    run(&["rm", "changed"]).ok();
    seen
}

#[test]
fn diff_and_export_match_dockerd() {
    let Some((ours, oracle)) = pair() else { return };
    let got = diff_scenario(&|a| ours.docker_cmd(a));
    let want = diff_scenario(&|a| oracle.docker_cmd(a));
    assert_eq!(
        got,
        want,
        "vmrund:\n{}\n\ndockerd:\n{}",
        got.join("\n"),
        want.join("\n")
    );
}

#[test]
fn running_containers_export_their_root_and_cp_sees_volumes() {
    if !require_root() || !require_tool("docker") || !require_tool("tar") {
        return;
    }
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "live",
        "-v",
        "vol1:/data",
        "busybox",
        "sh",
        "-c",
        "echo v > /data/in-volume && echo n > /new && touch /ready && sleep 600",
    ])
    .ok();
    vmrun_e2e::wait_for(Duration::from_secs(10), "the container's files", || {
        d.docker(&["exec", "live", "test", "-e", "/ready"])
            .success()
            .then_some(())
    });
    let (ok, tar, err) = output(d.docker_cmd(&["export", "live"]));
    assert!(ok, "{err}");
    let names = listing(&tar);
    assert!(names.iter().any(|l| l.ends_with(" new")), "{names:?}");
    assert!(
        names.iter().any(|l| l.ends_with(" bin/busybox")),
        "{names:?}"
    );
    // Only the container's own file system: no volume contents, no /proc or /sys.
    assert!(!names.iter().any(|l| l.contains("in-volume")), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|l| l.contains(" proc/1") || l.contains(" sys/kernel")),
        "{names:?}"
    );
    // docker cp of a running container sees its volumes, both ways.
    let (ok, tar, err) = output(d.docker_cmd(&["cp", "live:/data/in-volume", "-"]));
    assert!(ok, "{err}");
    assert_eq!(listing(&tar).len(), 1);
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("to-volume"), "t").unwrap();
    d.docker(&[
        "cp",
        local.path().join("to-volume").to_str().unwrap(),
        "live:/data/",
    ])
    .ok();
    d.docker(&[
        "run",
        "--rm",
        "-v",
        "vol1:/v",
        "busybox",
        "cat",
        "/v/to-volume",
    ])
    .ok();
    d.docker(&["rm", "-f", "live"]).ok();
}

#[test]
fn cp_reaches_the_volumes_of_a_stopped_container() {
    if !require_root() || !require_tool("docker") || !require_tool("tar") {
        return;
    }
    let d = Daemon::start();
    vmrun_e2e::cp::stopped_volumes_scenario(&|a| d.docker_cmd(a), "native");
    // Nothing of the container stays mounted after the copies.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let containers = d.data_root().join("containers").display().to_string();
    assert!(!mounts.contains(&containers), "left mounted:\n{mounts}");
}
