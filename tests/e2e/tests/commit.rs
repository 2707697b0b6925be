//! `docker commit` and `vmrun commit` through vmrund: a container's changes
//! (new files, a deleted file, a directory replaced whole) become a new image
//! on top of its own, with `--change`, `--message` and `--author`.

use std::time::Duration;

use vmrun_e2e::{require_root, require_tool, run_with_timeout, wait_for, Daemon};

#[test]
fn committed_containers_keep_their_changes() {
    if !require_root() || !require_tool("docker") {
        return;
    }
    let d = Daemon::start();
    d.docker(&[
        "run",
        "--name",
        "changed",
        "busybox",
        "sh",
        "-c",
        "mkdir /data && echo hello > /data/greeting && rm /bin/true && rm -rf /home && mkdir /home && echo only > /home/only",
    ])
    .ok();

    let out = run_with_timeout(
        d.docker_cmd(&[
            "commit",
            "-c",
            r#"CMD ["cat", "/data/greeting"]"#,
            "-m",
            "e2e commit",
            "-a",
            "tester",
            "changed",
            "e2e/committed:1",
        ]),
        None,
        Duration::from_secs(60),
    );
    out.ok();
    let id = out.stdout.trim().to_owned();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");

    let run = d.docker(&["run", "--rm", "e2e/committed:1"]);
    run.ok();
    assert_eq!(run.stdout, "hello\n", "{run}");
    // The deleted file stays deleted (whiteout); the replaced directory holds only its new file (opaque).
    let check = d.docker(&[
        "run",
        "--rm",
        "e2e/committed:1",
        "sh",
        "-c",
        "test -e /bin/true && echo present || echo gone; ls /home; test -e /etc/passwd && echo base",
    ]);
    check.ok();
    assert_eq!(check.stdout, "gone\nonly\nbase\n", "{check}");

    let inspect = d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{.Author}} {{len .RootFS.Layers}}",
        "e2e/committed:1",
    ]);
    inspect.ok();
    assert_eq!(inspect.stdout.trim(), format!("{id} tester 2"), "{inspect}");
    let history = d.docker(&[
        "history",
        "--format",
        "{{.Comment}}|{{.CreatedBy}}",
        "e2e/committed:1",
    ]);
    history.ok();
    let newest = history.stdout.lines().next().unwrap_or_default().to_owned();
    assert!(
        newest.starts_with("e2e commit|sh -c mkdir /data"),
        "{history}"
    );

    // A running container, through vmrun; its config (Cmd) carries over.
    d.vmrun(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo live > /live; sleep 300",
    ])
    .ok();
    wait_for(
        Duration::from_secs(10),
        "the container to write /live",
        || {
            d.vmrun(&["exec", "live", "cat", "/live"])
                .success()
                .then_some(())
        },
    );
    let out = d.vmrun(&["commit", "live", "e2e/live"]);
    out.ok();
    assert!(out.stdout.trim().starts_with("sha256:"), "{out}");
    let run = d.vmrun(&["run", "--rm", "e2e/live", "cat", "/live"]);
    run.ok();
    assert_eq!(run.stdout, "live\n", "{run}");
    let cmd = d.vmrun(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Cmd}}",
        "e2e/live",
    ]);
    cmd.ok();
    assert_eq!(
        cmd.stdout.trim(),
        r#"["sh","-c","echo live > /live; sleep 300"]"#,
        "{cmd}"
    );
    d.vmrun(&["rm", "-f", "live"]).ok();

    // Bad input: named, nothing stored.
    let before = d.vmrun(&["images", "-q"]).stdout;
    let missing = d.vmrun(&["commit", "nope", "e2e/nope"]);
    missing.code_is(1);
    assert!(
        missing.stderr.contains("No such container: nope"),
        "{missing}"
    );
    let bad = d.vmrun(&["commit", "-c", "RUN make", "changed", "e2e/bad"]);
    bad.code_is(1);
    assert!(
        bad.stderr.contains("run is not a valid change command"),
        "{bad}"
    );
    assert_eq!(d.vmrun(&["images", "-q"]).stdout, before);
}
