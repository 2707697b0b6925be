//! The volumes-and-image-content scenario (`tests/volume_fill.rs` runs it against vmrund
//! and Debian's dockerd, `tests/vm_shared.rs` in the shared VM and natively): an image's
//! `VOLUME` gets an anonymous volume filled with the image's files (owner kept), `-v
//! /path` makes one too, a new named volume over an image directory starts with its
//! content and keeps it, `nocopy` leaves it empty, a volume that already has files is not
//! touched, and `rm -v` and `--rm` remove the anonymous volumes but never a named one.
//! Each step's outcome is one line of the result, for comparing daemons.

use crate::CmdOutput;

/// A docker command against one daemon.
pub type Docker<'a> = &'a dyn Fn(&[&str]) -> CmdOutput;

/// `docker run --network none ARGS...`, its output (checked to succeed).
fn run(d: Docker<'_>, args: &[&str]) -> String {
    let mut argv = vec!["run", "--network", "none"];
    argv.extend_from_slice(args);
    let out = d(&argv);
    out.ok();
    out.stdout
}

/// How many volumes the daemon has.
fn volume_count(d: Docker<'_>) -> usize {
    let out = d(&["volume", "ls", "-q"]);
    out.ok();
    out.stdout.lines().filter(|l| !l.is_empty()).count()
}

/// Runs the scenario through `d` (its images: busybox); one line per step's outcome.
pub fn scenario(d: Docker<'_>) -> Vec<String> {
    let mut seen = Vec::new();
    // An image with files at /data, one owned by 1000, and `VOLUME /data`.
    run(
        d,
        &[
            "--name", "vf-base", "busybox", "sh", "-c",
            "mkdir -p /data/sub && echo hi > /data/f && echo deep > /data/sub/g && chown 1000:1000 /data/f",
        ],
    );
    d(&["commit", "-c", "VOLUME /data", "vf-base", "vf-img"]).ok();
    d(&["rm", "vf-base"]).ok();
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
    let mounts = d(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Destination}};{{end}}",
        "vf-a",
    ]);
    seen.push(format!("mounts: {}", mounts.stdout.trim()));
    d(&["rm", "-v", "vf-a"]).ok();
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
    d(&["volume", "rm", "vf-named"]).ok();

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
    d(&["volume", "rm", "vf-nocopy"]).ok();
    d(&["rmi", "vf-img"]).ok();
    seen
}
