//! `docker build` (classic builder protocol) against vmrund: steps, cache, errors,
//! context safety; `tests/build_oracle.rs` compares results with dockerd.

use std::path::Path;
use std::time::Duration;

use vmrun_e2e::{require_root, require_tool, run_with_timeout, CmdOutput, Daemon};

/// Writes `files` (path, contents) under a new context directory.
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("vme-ctx-")
        .tempdir()
        .unwrap();
    for (path, text) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    dir
}

fn build(d: &Daemon, ctx: &Path, args: &[&str]) -> CmdOutput {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let ctx = ctx.to_str().unwrap();
    all.push(ctx);
    let mut cmd = d.docker_cmd(&all);
    cmd.env("DOCKER_BUILDKIT", "0");
    run_with_timeout(cmd, None, Duration::from_secs(120))
}

fn ready() -> bool {
    require_root() && require_tool("docker")
}

#[test]
fn builds_run_copy_and_metadata() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nENV GREETING=hello\nWORKDIR /app\nCOPY hello.txt .\nRUN echo \"$GREETING world\" > out.txt && cat hello.txt\nCMD [\"cat\", \"/app/out.txt\"]\n",
        ),
        ("hello.txt", "from the context\n"),
    ]);
    let out = build(&d, ctx.path(), &["-t", "e2e/built:1"]);
    out.ok();
    let text = out.stdout.as_str();
    assert!(text.contains("Step 1/6 : FROM busybox"), "{out}");
    assert!(
        text.contains("Step 5/6 : RUN echo \"$GREETING world\" > out.txt && cat hello.txt"),
        "{out}"
    );
    assert!(
        text.contains("from the context"),
        "RUN output is relayed: {out}"
    );
    assert!(text.contains("Successfully built "), "{out}");
    assert!(text.contains("Successfully tagged e2e/built:1"), "{out}");
    let run = d.docker(&["run", "--rm", "e2e/built:1"]);
    run.ok();
    assert_eq!(run.stdout, "hello world\n", "{run}");
    // Without DOCKER_BUILDKIT the docker CLI picks the classic builder from `/_ping`.
    let mut plain = d.docker_cmd(&["build", "-q", ctx.path().to_str().unwrap()]);
    plain.env_remove("DOCKER_BUILDKIT");
    let plain = run_with_timeout(plain, None, Duration::from_secs(120));
    plain.ok();
    assert!(plain.stdout.starts_with("sha256:"), "{plain}");
    // Intermediate step images are hidden unless `-a`, as with dockerd.
    let images = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.stdout.lines().count(), 2, "{images}");
    let all = d.docker(&["images", "-a", "-q"]);
    assert!(all.stdout.lines().count() > 2, "{all}");
    let parent = d.docker(&["image", "inspect", "-f", "{{.Parent}}", "e2e/built:1"]);
    assert!(parent.stdout.starts_with("sha256:"), "{parent}");
    // Removing the image removes its step images too, as dockerd does; busybox stays.
    d.docker(&["rmi", "e2e/built:1"]).ok();
    let left = d.docker(&["images", "-a", "--format", "{{.Repository}}"]);
    assert_eq!(left.stdout, "busybox\n", "{left}");
}

#[test]
fn cache_hits_and_a_changed_file_invalidates_from_its_copy() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nRUN echo first > /first\nCOPY app.txt /app.txt\nRUN cat /app.txt > /copy\nCMD [\"cat\", \"/copy\"]\n",
        ),
        ("app.txt", "v1\n"),
    ]);
    let first = build(&d, ctx.path(), &["-t", "e2e/cached"]);
    first.ok();
    assert_eq!(
        first.stdout.matches(" ---> Using cache").count(),
        0,
        "{first}"
    );

    let second = build(&d, ctx.path(), &["-t", "e2e/cached"]);
    second.ok();
    assert_eq!(
        second.stdout.matches(" ---> Using cache").count(),
        4,
        "{second}"
    );
    assert!(
        !second.stdout.contains("Running in"),
        "no RUN runs on a full cache hit: {second}"
    );
    let id = |o: &CmdOutput| {
        o.stdout
            .lines()
            .find_map(|l| l.strip_prefix("Successfully built "))
            .map(str::to_owned)
    };
    assert_eq!(id(&first), id(&second), "{second}");

    std::fs::write(ctx.path().join("app.txt"), "v2\n").unwrap();
    let third = build(&d, ctx.path(), &["-t", "e2e/cached"]);
    third.ok();
    // FROM is not a cache step; the first RUN hits, the COPY and all after it miss.
    assert_eq!(
        third.stdout.matches(" ---> Using cache").count(),
        1,
        "{third}"
    );
    assert_eq!(third.stdout.matches("Running in").count(), 1, "{third}");
    let run = d.docker(&["run", "--rm", "e2e/cached"]);
    assert_eq!(run.stdout, "v2\n", "{run}");

    let fresh = build(&d, ctx.path(), &["--no-cache", "-t", "e2e/cached"]);
    fresh.ok();
    assert_eq!(
        fresh.stdout.matches(" ---> Using cache").count(),
        0,
        "{fresh}"
    );
}

#[test]
fn failing_run_fails_the_build_and_leaves_nothing() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let images_before = d.docker(&["images", "-aq"]).stdout;
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo about to fail && exit 3\nCMD [\"true\"]\n",
    )]);
    let out = build(&d, ctx.path(), &["-t", "e2e/failed"]);
    out.code_is(3);
    assert!(out.stdout.contains("about to fail"), "{out}");
    assert!(
        out.stderr.contains(
            "The command '/bin/sh -c echo about to fail && exit 3' returned a non-zero code: 3"
        ),
        "{out}"
    );
    let ps = d.docker(&["ps", "-aq"]);
    assert_eq!(ps.stdout, "", "no container is left: {ps}");
    assert!(!d.docker(&["image", "inspect", "e2e/failed"]).success());
    assert_eq!(d.docker(&["images", "-aq"]).stdout, images_before);
}

#[test]
fn syntax_errors_name_the_line() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN true\n\nFROBNICATE now\n")]);
    let out = build(&d, ctx.path(), &[]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("line 4: unknown instruction: FROBNICATE"),
        "{out}"
    );
    let empty = context(&[("Dockerfile", "# nothing\n")]);
    let out = build(&d, empty.path(), &[]);
    assert!(
        !out.success() && out.stderr.contains("cannot be empty"),
        "{out}"
    );
}

#[test]
fn context_escapes_are_refused_with_the_path() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let outside = context(&[("secret", "outside\n")]);
    let cases: [(&str, &str); 3] = [
        ("FROM busybox\nCOPY ../secret /x\n", "../secret"),
        ("FROM busybox\nCOPY link /x\n", "link"),
        ("FROM busybox\nCOPY dir/up/secret /x\n", "dir/up"),
    ];
    for (dockerfile, named) in cases {
        let ctx = context(&[("Dockerfile", dockerfile), ("dir/keep", "k")]);
        std::os::unix::fs::symlink(outside.path().join("secret"), ctx.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), ctx.path().join("dir/up")).unwrap();
        let out = build(&d, ctx.path(), &["-t", "e2e/escape"]);
        assert!(!out.success(), "{dockerfile}: {out}");
        assert!(
            out.stderr.contains("outside the build context") && out.stderr.contains(named),
            "{dockerfile}: {out}"
        );
    }
    // An absolute source is relative to the context: /etc/passwd of the host is not there.
    let ctx = context(&[("Dockerfile", "FROM busybox\nCOPY /etc/passwd /x\n")]);
    let out = build(&d, ctx.path(), &[]);
    assert!(
        !out.success() && out.stderr.contains("/etc/passwd"),
        "{out}"
    );
    assert!(!d.docker(&["image", "inspect", "e2e/escape"]).success());
}

#[test]
fn options_quiet_iidfile_labels_chmod_and_url() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY --chmod=600 f.txt /f.txt\nCOPY --from=busybox /bin/busybox /busybox\nCMD [\"/busybox\", \"cat\", \"/f.txt\"]\n",
        ),
        ("f.txt", "scratch file\n"),
    ]);
    // A cache source that made none of these steps: no hit, no warning.
    let sourced = build(&d, ctx.path(), &["--cache-from", "busybox"]);
    sourced.ok();
    assert!(!sourced.all().contains("[Warning]"), "{sourced}");
    assert!(!sourced.stdout.contains("Using cache"), "{sourced}");
    let iid = ctx.path().join("iid");
    let iid_arg = iid.to_str().unwrap().to_owned();
    let out = build(
        &d,
        ctx.path(),
        &[
            "-q",
            "--iidfile",
            &iid_arg,
            "--label",
            "built.by=e2e",
            "-t",
            "e2e/a",
            "-t",
            "e2e/b:2",
        ],
    );
    out.ok();
    let id = std::fs::read_to_string(&iid).unwrap().trim().to_owned();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(out.stdout.trim(), id, "-q prints only the id: {out}");
    for tag in ["e2e/a", "e2e/b:2"] {
        let run = d.docker(&["run", "--rm", tag]);
        assert_eq!(run.stdout, "scratch file\n", "{run}");
    }
    let labels = d.docker(&["image", "inspect", "-f", "{{json .Config.Labels}}", "e2e/a"]);
    assert_eq!(labels.stdout.trim(), r#"{"built.by":"e2e"}"#, "{labels}");
    let mode = d.docker(&[
        "run", "--rm", "e2e/a", "/busybox", "stat", "-c", "%a", "/f.txt",
    ]);
    assert_eq!(mode.stdout, "600\n", "{mode}");

    let url = context(&[("Dockerfile", "FROM busybox\nADD https://example.com/x /x\n")]);
    let out = build(&d, url.path(), &[]);
    assert!(
        !out.success() && out.stderr.contains("https://example.com/x"),
        "{out}"
    );
}

#[test]
fn vmrun_build_prints_what_docker_build_prints() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nARG WHO\nCOPY . /ctx/\nRUN echo \"hi $WHO\"\nCMD [\"ls\", \"/ctx\"]\n",
        ),
        (".dockerignore", "*.tmp\n"),
        ("keep.txt", "k"),
        ("drop.tmp", "d"),
    ]);
    let path = ctx.path().to_str().unwrap();
    let ours = d.vmrun(&[
        "build",
        "--isolation",
        "process",
        "--build-arg",
        "WHO=vmrun",
        "-t",
        "e2e/cli",
        path,
    ]);
    ours.ok();
    assert!(ours.stdout.contains("hi vmrun"), "{ours}");
    let docker = build(
        &d,
        ctx.path(),
        &["--build-arg", "WHO=vmrun", "-t", "e2e/cli"],
    );
    docker.ok();
    // The second build is all cache hits; both CLIs print the daemon's text the same way.
    let steps = |o: &CmdOutput| -> Vec<String> {
        o.stdout
            .lines()
            .filter(|l| l.starts_with("Step ") || l.starts_with("Successfully"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(steps(&ours).len(), 7, "{ours}");
    assert_eq!(steps(&ours), steps(&docker), "{ours}\n{docker}");
    let listing = d.docker(&["run", "--rm", "e2e/cli"]);
    assert_eq!(listing.stdout, "Dockerfile\nkeep.txt\n", "{listing}");

    // A Dockerfile from outside the context, -q and --iidfile, a failing step's code.
    let elsewhere = context(&[("Other.dockerfile", "FROM busybox\nRUN exit 7\n")]);
    let file = elsewhere.path().join("Other.dockerfile");
    let failed = d.vmrun(&["build", "-f", file.to_str().unwrap(), path]);
    failed.code_is(7);
    assert!(
        failed
            .stderr
            .contains("The command '/bin/sh -c exit 7' returned a non-zero code: 7"),
        "{failed}"
    );
    let iid = elsewhere.path().join("iid");
    let quiet = d.vmrun(&["build", "-q", "--iidfile", iid.to_str().unwrap(), path]);
    quiet.ok();
    let id = std::fs::read_to_string(&iid).unwrap();
    assert_eq!(quiet.stdout.trim(), id.trim(), "{quiet}");

    // `-`: a Dockerfile on standard input (an empty context).
    let stdin = d.vmrun_stdin(
        &["build", "-t", "e2e/stdin", "-"],
        b"FROM busybox\nRUN echo from-stdin > /out\nCMD [\"cat\", \"/out\"]\n",
    );
    stdin.ok();
    let run = d.docker(&["run", "--rm", "e2e/stdin"]);
    assert_eq!(run.stdout, "from-stdin\n", "{stdin}\n{run}");
}

#[test]
fn bad_requests_are_4xx_and_the_daemon_lives_on() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ping = d.api("GET", "/_ping", None);
    assert_eq!(
        ping.header("builder-version"),
        Some("1"),
        "{:?}",
        ping.headers
    );
    let cases = [
        (
            "/build",
            "this is not a tar archive, just words",
            "build context",
        ),
        ("/build?buildargs=%7Bnope", "", "invalid buildargs"),
        ("/build?version=2", "", "BuildKit"),
        ("/build?t=bad%20tag%21", "", "invalid tag"),
        ("/build?isolation=nonsense", "", "invalid isolation"),
    ];
    for (path, body, says) in cases {
        let r = d.api("POST", path, Some(body));
        assert!(
            (400..500).contains(&r.status),
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(r.text().contains(says), "{path}: {}", r.text());
    }
    assert_eq!(d.api("GET", "/_ping", None).status, 200);
}

#[test]
fn docker_compose_builds_through_the_same_endpoint() {
    if !ready() || !require_tool("docker-compose") {
        return;
    }
    let d = Daemon::start();
    let ctx = context(&[
        (
            "docker-compose.yml",
            "version: \"3\"\nservices:\n  app:\n    build:\n      context: ./app\n      args:\n        FLAVOR: compose\n    image: e2e/compose-app:1\n",
        ),
        ("app/Dockerfile", "FROM busybox\nARG FLAVOR\nRUN echo \"$FLAVOR\" > /flavor\nCMD [\"cat\", \"/flavor\"]\n"),
    ]);
    let mut cmd = std::process::Command::new("docker-compose");
    cmd.current_dir(ctx.path())
        .args(["-H", &d.host(), "build"])
        .env("COMPOSE_DOCKER_CLI_BUILD", "0")
        .env("DOCKER_BUILDKIT", "0");
    let out = run_with_timeout(cmd, None, Duration::from_secs(120));
    out.ok();
    let run = d.docker(&["run", "--rm", "e2e/compose-app:1"]);
    assert_eq!(run.stdout, "compose\n", "{out}\n{run}");
}

/// Mount points under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_daemon_killed_mid_build_leaves_nothing_mounted_after_restart() {
    if !ready() {
        return;
    }
    let mut d = Daemon::start();
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN sleep 30\n")]);
    let mut cmd = d.docker_cmd(&["build", ctx.path().to_str().unwrap()]);
    cmd.env("DOCKER_BUILDKIT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut client = cmd.spawn().unwrap();
    let work = d.data_root().join("tmp/build");
    vmrun_e2e::wait_for(Duration::from_secs(30), "the build's context mount", || {
        (!mounts_under(&work).is_empty()).then_some(())
    });
    d.kill9();
    let _ = client.wait();
    d.restart();
    assert_eq!(mounts_under(&work), Vec::<String>::new());
    assert!(!work.exists(), "{} is left", work.display());
}

#[test]
fn run_steps_get_the_network_asked_for() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN ls /sys/class/net > /build-nets\nRUN --network=none ls /sys/class/net > /step-nets\nCMD [\"cat\", \"/build-nets\", \"/step-nets\"]\n",
    )]);
    build(&d, ctx.path(), &["-t", "e2e/nets"]).ok();
    let nets = d.docker(&["run", "--rm", "--network", "none", "e2e/nets"]);
    // The default: a bridge network (eth0); RUN --network=none: loopback only.
    assert_eq!(nets.stdout, "eth0\nlo\nlo\n", "{nets}");
    build(
        &d,
        ctx.path(),
        &["--no-cache", "--network", "none", "-t", "e2e/nets"],
    )
    .ok();
    let nets = d.docker(&["run", "--rm", "--network", "none", "e2e/nets"]);
    assert_eq!(nets.stdout, "lo\nlo\n", "{nets}");
}

#[test]
fn heredocs_run_scripts_and_make_files() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nARG NAME=world\nRUN <<EOF\nset -e\necho \"hello $NAME\" > /greeting\necho second >> /greeting\nEOF\nRUN cat <<'RAW' > /raw\n$NAME stays\nRAW\nCOPY <<conf /etc/app/\nname=\"$NAME\"\nconf\nCMD [\"cat\", \"/greeting\", \"/raw\", \"/etc/app/conf\"]\n",
    )]);
    let out = build(
        &d,
        ctx.path(),
        &["--build-arg", "NAME=vmrun", "-t", "e2e/heredoc"],
    );
    out.ok();
    let run = d.docker(&["run", "--rm", "e2e/heredoc"]);
    assert_eq!(
        run.stdout, "hello vmrun\nsecond\n$NAME stays\nname=\"vmrun\"\n",
        "{out}\n{run}"
    );
    let again = build(
        &d,
        ctx.path(),
        &["--build-arg", "NAME=vmrun", "-t", "e2e/heredoc"],
    );
    assert_eq!(
        again.stdout.matches(" ---> Using cache").count(),
        5,
        "{again}"
    );
}

#[test]
fn run_in_a_vm_isolation_commits_the_vms_layer() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo in-a-vm > /made-in-vm && rm /bin/vi && mkdir -p /etc/vm.d && uname -r > /etc/vm.d/kernel\n",
    )]);
    let out = build(&d, ctx.path(), &["--isolation", "vm", "-t", "e2e/in-vm"]);
    if out.stderr.contains("is not available on this daemon") {
        vmrun_test_skip::report(format_args!(
            "VM isolation unavailable: {}",
            out.stderr.trim()
        ));
        return;
    }
    out.ok();
    // The layer made in the VM, run natively: the file, the deletion, the guest's kernel.
    let run = d.docker(&[
        "run",
        "--rm",
        "e2e/in-vm",
        "sh",
        "-c",
        "cat /made-in-vm; test -e /bin/vi && echo vi-still-there; cat /etc/vm.d/kernel; uname -r",
    ]);
    run.ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"in-a-vm"), "{run}");
    assert!(
        !run.stdout.contains("vi-still-there"),
        "the whiteout kept: {run}"
    );
    assert_eq!(lines.len(), 3, "{run}");
    assert_ne!(lines[1], lines[2], "built in the guest's kernel: {run}");
    let ps = d.docker(&["ps", "-aq"]);
    assert_eq!(ps.stdout, "", "{ps}");
}

fn image_id(d: &Daemon, name: &str) -> String {
    let r = d.api("GET", &format!("/images/{name}/json"), None);
    r.json()["Id"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn cache_from_images_in_the_store_replace_the_local_cache() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let dockerfile = "FROM busybox\nRUN echo one > /one\nCOPY f /f\nENV X=1\nRUN echo two > /two\n";
    let ctx = context(&[("Dockerfile", dockerfile), ("f", "file\n")]);
    build(&d, ctx.path(), &["-t", "e2e/source"]).ok();
    let source_id = image_id(&d, "e2e/source");
    // As if the image came from elsewhere: saved, removed with its build cache, loaded.
    let tar = ctx.path().join("source.tar");
    d.docker(&["save", "-o", tar.to_str().unwrap(), "e2e/source"])
        .ok();
    d.docker(&["rmi", "e2e/source"]).ok();
    d.docker(&["load", "-i", tar.to_str().unwrap()]).ok();
    std::fs::remove_file(tar).unwrap();

    let out = build(
        &d,
        ctx.path(),
        &["--cache-from", "e2e/source", "-t", "e2e/again"],
    );
    out.ok();
    assert_eq!(out.stdout.matches(" ---> Using cache").count(), 4, "{out}");
    assert!(!out.stdout.contains("Running in"), "no RUN ran: {out}");
    assert_eq!(
        image_id(&d, "e2e/again"),
        source_id,
        "the last step is the source image itself"
    );

    // A changed last step: the steps before it still come from the source.
    let changed = context(&[
        ("Dockerfile", &dockerfile.replace("two", "three")),
        ("f", "file\n"),
    ]);
    let out = build(
        &d,
        changed.path(),
        &["--cache-from", "e2e/source", "-t", "e2e/changed"],
    );
    out.ok();
    assert_eq!(out.stdout.matches(" ---> Using cache").count(), 3, "{out}");
    let run = d.docker(&["run", "--rm", "e2e/changed", "cat", "/one", "/f", "/three"]);
    assert_eq!(run.stdout, "one\nfile\nthree\n", "{run}");
    // Without --cache-from nothing is cached any more (the local cache went with the
    // removed images), and an unknown source is a warning, not an error.
    let out = build(
        &d,
        changed.path(),
        &["--no-cache", "--cache-from", "e2e/source"],
    );
    out.ok();
    assert_eq!(out.stdout.matches(" ---> Using cache").count(), 0, "{out}");
    let out = build(&d, ctx.path(), &["--cache-from", "no/such:image"]);
    out.ok();
    assert!(out.all().contains("no/such:image"), "{out}");
}
