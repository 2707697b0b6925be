//! `docker build` (classic builder protocol) against vmrund: steps, cache, errors,
//! context safety; `tests/build_oracle.rs` compares results with dockerd.

use std::path::Path;
use std::time::Duration;

use vmrun_e2e::{require_root, require_tool, run_with_timeout, CmdOutput, Daemon};

/// Writes `files` (path, contents) under a new context directory.
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("vme-ctx-").tempdir().unwrap();
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
    assert!(text.contains("Step 5/6 : RUN echo \"$GREETING world\" > out.txt && cat hello.txt"), "{out}");
    assert!(text.contains("from the context"), "RUN output is relayed: {out}");
    assert!(text.contains("Successfully built "), "{out}");
    assert!(text.contains("Successfully tagged e2e/built:1"), "{out}");
    let run = d.docker(&["run", "--rm", "e2e/built:1"]);
    run.ok();
    assert_eq!(run.stdout, "hello world\n", "{run}");
}
