//! `docker cp` scenarios the archive tests run against several daemons (vmrund natively,
//! in VMs, Debian's dockerd) and compare line by line.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{run_with_timeout, CmdOutput};

/// Asserts that the lines `got` (from `got_label`) equal `want` (from `want_label`),
/// showing each differing pair and both listings when they do not.
pub fn assert_same_lines(got_label: &str, got: &[String], want_label: &str, want: &[String]) {
    let width = got_label.len().max(want_label.len()) + 1;
    let diff: Vec<String> = got
        .iter()
        .zip(want.iter())
        .filter(|(g, w)| g != w)
        .map(|(g, w)| {
            format!(
                "{:width$} {g}\n{:width$} {w}",
                format!("{got_label}:"),
                format!("{want_label}:")
            )
        })
        .collect();
    assert!(
        diff.is_empty() && got.len() == want.len(),
        "differences from {want_label}:\n{}\n\n{got_label} ({} lines):\n{}\n\n{want_label} ({} lines):\n{}",
        diff.join("\n"),
        got.len(),
        got.join("\n"),
        want.len(),
        want.join("\n")
    );
}

/// A one-file tar whose member is named `name` verbatim (`../` included, which the `tar`
/// crate refuses to write), holding `content` (at most 512 bytes), mode 644, owner 0:0.
pub fn raw_tar(name: &str, content: &[u8]) -> Vec<u8> {
    assert!(name.len() <= 100 && content.len() <= 512);
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut t = h.to_vec();
    if !content.is_empty() {
        let mut data = [0u8; 512];
        data[..content.len()].copy_from_slice(content);
        t.extend_from_slice(&data);
    }
    t.extend_from_slice(&[0u8; 1024]);
    t
}

/// Runs a docker command, keeping its binary standard output.
pub fn output(mut cmd: Command) -> (bool, Vec<u8>, String) {
    let out = cmd.output().expect("running docker");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `tar tv` of an archive without the times: `mode owner size name [-> target]`.
pub fn listing(tar: &[u8]) -> Vec<String> {
    let out = run_with_timeout(
        {
            let mut c = Command::new("tar");
            c.args(["-tvf", "-"]);
            c
        },
        Some(tar),
        Duration::from_secs(30),
    );
    if !out.success() {
        return vec![format!("not a tar: {}", out.stderr.trim())];
    }
    out.stdout
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let size = if w[0].starts_with('d') { "-" } else { w[2] };
            format!("{} {} {} {}", w[0], w[1], size, w[5..].join(" "))
        })
        .collect()
}

/// `mode uid:gid type [size] name` of every file under `dir` on this host, sorted.
pub fn host_tree(dir: &Path) -> Vec<String> {
    let script = format!(
        "cd {} && find . | sort | while read -r f; do if [ -d \"$f\" ]; then stat -c '%a %u:%g %F %n' \"$f\"; else stat -c '%a %u:%g %F %s %n' \"$f\"; fi; done",
        dir.display()
    );
    let out = run_with_timeout(
        {
            let mut c = Command::new("sh");
            c.args(["-c", &script]);
            c
        },
        None,
        Duration::from_secs(30),
    );
    out.ok();
    out.stdout.lines().map(str::to_owned).collect()
}

/// The same in a container, through `docker exec`.
pub const TREE_IN: &str = "cd \"$1\" && find . | sort | while read -r f; do if [ -d \"$f\" ]; then stat -c '%a %u:%g %F %n' \"$f\"; else stat -c '%a %u:%g %F %s %n' \"$f\"; fi; done";

fn note(seen: &mut Vec<String>, what: &str, out: &CmdOutput) {
    seen.push(format!("{what}: exit {} {}", out.code, out.stderr.trim()));
}

/// Everything one daemon shows for the cp scenario, as lines to compare.
pub fn cp_scenario(docker: &dyn Fn(&[&str]) -> Command, work: &Path) -> Vec<String> {
    let run = |args: &[&str]| run_with_timeout(docker(args), None, Duration::from_secs(120));
    let mut seen = Vec::new();
    let setup = "mkdir -p /data/sub && echo hello > /data/file && echo deep > /data/sub/deep \
        && ln -s /data/file /data/link && ln -s / /data/root && ln /data/file /data/hard \
        && chown 1000:1000 /data/file && chmod 640 /data/file && mkfifo /data/fifo && touch /ready; sleep 600";
    run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        setup,
    ])
    .ok();
    for _ in 0..100 {
        if run(&["exec", "src", "test", "-e", "/ready"]).success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // Out of the container: a file, a directory, a symlink kept and followed.
    let host_out = work.join("out");
    std::fs::create_dir_all(&host_out).unwrap();
    for (src, dest) in [
        ("src:/data/file", "file"),
        ("src:/data", "dir"),
        ("src:/data/link", "link"),
        ("src:/data/sub/", "sub"),
    ] {
        let out = run(&["cp", src, host_out.join(dest).to_str().unwrap()]);
        note(&mut seen, &format!("cp {src}"), &out);
    }
    let out = run(&[
        "cp",
        "-L",
        "src:/data/link",
        host_out.join("followed").to_str().unwrap(),
    ]);
    note(&mut seen, "cp -L link", &out);
    seen.extend(host_tree(&host_out));
    for path in [
        "/data",
        "/data/link",
        "/data/file",
        "/data/.",
        "/data/root/etc/passwd",
    ] {
        let (ok, tar, err) = output(docker(&["cp", &format!("src:{path}"), "-"]));
        seen.push(format!("cp {path} -: {ok} {}", err.trim()));
        seen.extend(listing(&tar));
    }
    let out = run(&["cp", "src:/nope", host_out.join("nope").to_str().unwrap()]);
    note(&mut seen, "cp missing", &out);

    // Into a running container: a tree with owners, with and without -a.
    let tree = work.join("in");
    std::fs::create_dir_all(tree.join("d")).unwrap();
    std::fs::write(tree.join("f.txt"), "local\n").unwrap();
    std::fs::write(tree.join("d/g"), "g\n").unwrap();
    std::os::unix::fs::symlink("f.txt", tree.join("l")).unwrap();
    for (p, mode) in [("", 0o750), ("f.txt", 0o600), ("d", 0o700), ("d/g", 0o644)] {
        let path = tree.join(p);
        nix::unistd::chown(&path, Some(1234.into()), Some(5678.into())).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
    }
    let t = tree.to_str().unwrap();
    note(&mut seen, "cp in dir", &run(&["cp", t, "src:/data/in"]));
    note(
        &mut seen,
        "cp in file",
        &run(&["cp", &format!("{t}/f.txt"), "src:/data/renamed.txt"]),
    );
    note(
        &mut seen,
        "cp in into dir",
        &run(&["cp", &format!("{t}/f.txt"), "src:/data/sub"]),
    );
    note(
        &mut seen,
        "cp -a",
        &run(&["cp", "-a", &format!("{t}/f.txt"), "src:/data/archive.txt"]),
    );
    let clash = work.join("clash");
    std::fs::create_dir_all(&clash).unwrap();
    std::fs::write(clash.join("sub"), "not a dir").unwrap();
    let c = clash.to_str().unwrap();
    let mut out = run(&["cp", &format!("{c}/."), "src:/data/"]);
    // An artifact of dockerd's re-exec'd extraction.
    out.stderr = out
        .stderr
        .replace("Error processing tar file(exit status 1): ", "");
    note(&mut seen, "cp file over dir", &out);
    note(
        &mut seen,
        "cp into missing dir",
        &run(&["cp", &format!("{t}/f.txt"), "src:/missing/x"]),
    );
    let listed = run(&["exec", "src", "sh", "-c", TREE_IN, "sh", "/data"]);
    listed.ok();
    seen.extend(listed.stdout.lines().map(|l| format!("in src: {l}")));

    // A stopped (never started) container with a user for -a (dockerd looks the user
    // up on its host: a name both have).
    run(&[
        "create",
        "--network",
        "none",
        "--name",
        "stopped",
        "-u",
        "root",
        "busybox",
        "sh",
        "-c",
        TREE_IN,
        "sh",
        "/tmp",
    ])
    .ok();
    note(
        &mut seen,
        "cp into created",
        &run(&["cp", t, "stopped:/tmp/plain"]),
    );
    note(
        &mut seen,
        "cp -a into created",
        &run(&["cp", "-a", t, "stopped:/tmp/owned"]),
    );
    let (ok, tar, err) = output(docker(&["cp", "stopped:/tmp/owned", "-"]));
    seen.push(format!("cp from created: {ok} {}", err.trim()));
    seen.extend(listing(&tar));
    let started = run(&["start", "-a", "stopped"]);
    started.ok();
    seen.extend(started.stdout.lines().map(|l| format!("in stopped: {l}")));
    // And once it has run and exited.
    note(
        &mut seen,
        "cp into exited",
        &run(&["cp", &format!("{t}/f.txt"), "stopped:/tmp/after.txt"]),
    );
    let (ok, tar, err) = output(docker(&["cp", "stopped:/tmp/after.txt", "-"]));
    seen.push(format!("cp from exited: {ok} {}", err.trim()));
    seen.extend(listing(&tar));
    run(&["rm", "-f", "src", "stopped"]).ok();
    seen
}

/// `docker cp` into and out of the volumes and binds of a stopped container (one that
/// never ran, then one that has exited): a named volume written by `cp` and read by the
/// container's next start, a file of a read-only bind read, a write into that bind
/// refused with dockerd's message and nothing written on the host. `docker` builds a
/// command for the daemon under test (flags such as `--isolation` included); the names
/// `sv` and `vol-<tag>` are used and removed.
pub fn stopped_volumes_scenario(docker: &dyn Fn(&[&str]) -> Command, tag: &str) {
    let run = |args: &[&str]| run_with_timeout(docker(args), None, Duration::from_secs(120));
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("from-host"), "host file\n").unwrap();
    let bind = format!("{}:/hostbind:ro", host.path().display());
    let volume = format!("vol-{tag}:/data");
    run(&["rm", "-f", "sv"]);
    run(&[
        "create",
        "--name",
        "sv",
        "--network",
        "none",
        "-v",
        &volume,
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /data/seed; echo again > /data/later",
    ])
    .ok();
    let local = tempfile::tempdir().unwrap();
    let seed = local.path().join("seed");
    std::fs::write(&seed, "seeded\n").unwrap();
    run(&["cp", seed.to_str().unwrap(), "sv:/data/"]).ok();
    let (ok, tar, err) = output(docker(&["cp", "sv:/hostbind/from-host", "-"]));
    assert!(ok, "{err}");
    assert_eq!(listing(&tar).len(), 1, "{:?}", listing(&tar));
    let ro = run(&["cp", seed.to_str().unwrap(), "sv:/hostbind/"]);
    assert!(!ro.success(), "a read-only bind was written: {ro}");
    assert!(
        ro.stderr.contains("mounted volume is marked read-only"),
        "{ro}"
    );
    assert!(!host.path().join("seed").exists());
    let started = run(&["start", "-a", "sv"]);
    started.ok();
    assert_eq!(started.stdout, "seeded\n", "{started}");
    // Exited: what the container wrote into its volume is read from it.
    let back = local.path().join("back");
    run(&["cp", "sv:/data/later", back.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "again\n");
    run(&["rm", "sv"]).ok();
    run(&["volume", "rm", &format!("vol-{tag}")]).ok();
}
