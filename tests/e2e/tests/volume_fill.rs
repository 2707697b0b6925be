//! Volumes and the image's content, against vmrund and Debian's dockerd (the oracle),
//! with the same outcome step by step: an image's `VOLUME` gets an anonymous volume
//! filled with the image's files (owner kept), `-v /path` makes one too, a new named
//! volume over an image directory starts with its content and keeps it, `nocopy` leaves
//! it empty, a volume that already has files is not touched, and `rm -v` and `--rm`
//! remove the anonymous volumes but never a named one.

use vmrun_e2e::reference::ReferenceDaemon;
use vmrun_e2e::{require_root, CmdOutput, Daemon};

/// The same docker command against either daemon.
trait Docker {
    fn run(&self, args: &[&str]) -> CmdOutput;
}

impl Docker for Daemon {
    fn run(&self, args: &[&str]) -> CmdOutput {
        self.docker(args)
    }
}

impl Docker for ReferenceDaemon {
    fn run(&self, args: &[&str]) -> CmdOutput {
        self.docker(args)
    }
}

/// `docker run --network none ARGS...`, its output (checked to succeed).
fn run(d: &dyn Docker, args: &[&str]) -> String {
    let mut argv = vec!["run", "--network", "none"];
    argv.extend_from_slice(args);
    let out = d.run(&argv);
    out.ok();
    out.stdout
}

/// How many volumes the daemon has.
fn volume_count(d: &dyn Docker) -> usize {
    let out = d.run(&["volume", "ls", "-q"]);
    out.ok();
    out.stdout.lines().filter(|l| !l.is_empty()).count()
}

fn scenario(d: &dyn Docker) -> Vec<String> {
    let mut seen = Vec::new();
    // An image with files at /data, one owned by 1000, and `VOLUME /data`.
    run(
        d,
        &[
            "--name", "vf-base", "busybox", "sh", "-c",
            "mkdir -p /data/sub && echo hi > /data/f && echo deep > /data/sub/g && chown 1000:1000 /data/f",
        ],
    );
    d.run(&["commit", "-c", "VOLUME /data", "vf-base", "vf-img"])
        .ok();
    d.run(&["rm", "vf-base"]).ok();
    let before = volume_count(d);

    // The image's VOLUME: an anonymous volume with the image's files and owners.
    let out = run(
        d,
        &[
            "--name",
            "vf-a",
            "vf-img",
            "sh",
            "-c",
            "cat /data/f /data/sub/g; stat -c %u /data/f",
        ],
    );
    seen.push(format!("anonymous: {out:?}"));
    seen.push(format!("volumes after run: +{}", volume_count(d) - before));
    let mounts = d.run(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Destination}};{{end}}",
        "vf-a",
    ]);
    seen.push(format!("mounts: {}", mounts.stdout.trim()));
    d.run(&["rm", "-v", "vf-a"]).ok();
    seen.push(format!("after rm -v: +{}", volume_count(d) - before));

    // `-v /extra` and `--rm`: both anonymous volumes go with the container.
    let out = run(
        d,
        &[
            "--rm",
            "-v",
            "/extra",
            "vf-img",
            "sh",
            "-c",
            "ls /extra | wc -l; cat /data/f",
        ],
    );
    seen.push(format!("--rm -v /extra: {out:?}"));
    seen.push(format!("after --rm: +{}", volume_count(d) - before));

    // A new named volume starts with the image's content and keeps it.
    let out = run(
        d,
        &[
            "--rm",
            "-v",
            "vf-named:/data",
            "vf-img",
            "sh",
            "-c",
            "cat /data/f; echo more > /data/new",
        ],
    );
    seen.push(format!("named: {out:?}"));
    let out = run(
        d,
        &[
            "--rm",
            "-v",
            "vf-named:/data",
            "busybox",
            "sh",
            "-c",
            "ls /data",
        ],
    );
    seen.push(format!("named later: {out:?}"));
    // Not empty any more: mounting it over another image directory copies nothing.
    let out = run(d, &["--rm", "-v", "vf-named:/etc", "busybox", "ls", "/etc"]);
    seen.push(format!("named over /etc: {out:?}"));
    seen.push(format!("named kept by --rm: {}", volume_count(d) - before));
    d.run(&["volume", "rm", "vf-named"]).ok();

    // `nocopy`: empty.
    let out = run(
        d,
        &[
            "--rm",
            "-v",
            "vf-nocopy:/data:nocopy",
            "vf-img",
            "ls",
            "/data",
        ],
    );
    seen.push(format!("nocopy: {out:?}"));
    d.run(&["volume", "rm", "vf-nocopy"]).ok();
    d.run(&["rmi", "vf-img"]).ok();
    seen
}

#[test]
fn volumes_start_with_the_images_content_as_with_dockerd() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let ours = scenario(&d);
    eprintln!("vmrund: {ours:#?}");
    assert_eq!(ours[0], "anonymous: \"hi\\ndeep\\n1000\\n\"", "{ours:?}");
    assert_eq!(ours[3], "after rm -v: +0", "{ours:?}");
    match ReferenceDaemon::start() {
        Ok(oracle) => assert_eq!(ours, scenario(&oracle)),
        Err(reason) => vmrun_test_skip::report(&reason),
    }
}
