//! `docker push` and `vmrun push` through vmrund to a real registry (Debian's
//! `docker-registry`) on 127.0.0.1; what was pushed pulls back and runs.

use std::time::Duration;

use vmrun_e2e::{free_port, require_root, require_tool, run_with_timeout, CmdOutput, Daemon};
use vmrun_test_registry::registry::{Auth, Registry};

const PUSH_TIMEOUT: Duration = Duration::from_secs(120);

fn docker(d: &Daemon, args: &[&str]) -> CmdOutput {
    run_with_timeout(d.docker_cmd(args), None, PUSH_TIMEOUT)
}

fn vmrun(d: &Daemon, args: &[&str]) -> CmdOutput {
    let mut cmd = d.vmrun_cmd(args);
    cmd.env("DOCKER_CONFIG", d.dir().join("docker-config"));
    run_with_timeout(cmd, None, PUSH_TIMEOUT)
}

/// The `sha256:…` after `marker` in `text`.
fn digest_after(text: &str, marker: &str) -> String {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} missing from:\n{text}"))
        + marker.len();
    text[start..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn docker_push_and_vmrun_push_reach_the_registry_and_pull_back() {
    if !require_root() || !require_tool("docker") {
        return;
    }
    let d = Daemon::start();
    let Some(registry) = Registry::start(Auth::Anonymous) else {
        return;
    };

    // The real docker CLI.
    let image = format!("{}/e2e/docker:1", registry.addr);
    docker(&d, &["tag", "busybox", &image]).ok();
    let pushed = docker(&d, &["push", &image]);
    pushed.ok();
    let out = pushed.out();
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/e2e/docker]",
            registry.addr
        )),
        "{pushed}"
    );
    assert!(out.contains(": Pushed"), "{pushed}");
    let digest = digest_after(out, "1: digest: ");
    assert!(digest.starts_with("sha256:"), "{pushed}");
    assert!(out.contains("size: "), "{pushed}");

    // Gone locally, then pulled back through vmrund: same digest, and it runs.
    docker(&d, &["rmi", &image]).ok();
    let pulled = docker(&d, &["pull", &image]);
    pulled.ok();
    assert_eq!(digest_after(pulled.out(), "Digest: "), digest, "{pulled}");
    let run = docker(&d, &["run", "--rm", &image, "echo", "pushed and pulled"]);
    run.ok();
    assert_eq!(run.stdout, "pushed and pulled\n", "{run}");

    // `vmrun push` to a sibling repository: the layer is mounted, not uploaded.
    let image2 = format!("{}/e2e/vmrun:2", registry.addr);
    vmrun(&d, &["tag", "busybox", &image2]).ok();
    let pushed2 = vmrun(&d, &["push", &image2]);
    pushed2.ok();
    assert!(
        pushed2.stdout.contains(&format!(
            "The push refers to repository [{}/e2e/vmrun]",
            registry.addr
        )),
        "{pushed2}"
    );
    assert!(
        pushed2.stdout.contains(": Mounted from e2e/docker"),
        "{pushed2}"
    );
    assert_eq!(
        digest_after(&pushed2.stdout, "2: digest: "),
        digest,
        "{pushed2}"
    );
    // Again, quietly: only the reference.
    let quiet = vmrun(&d, &["push", "-q", &image2]);
    quiet.ok();
    assert_eq!(quiet.stdout, format!("{image2}\n"), "{quiet}");

    vmrun(&d, &["rmi", &image2]).ok();
    let pulled2 = vmrun(&d, &["pull", &image2]);
    pulled2.ok();
    assert_eq!(
        digest_after(&pulled2.stdout, "Digest: "),
        digest,
        "{pulled2}"
    );

    // Not in the store: dockerd's message, exit 1, from both clients.
    let missing = format!("{}/e2e/nothing", registry.addr);
    let refused = vmrun(&d, &["push", &missing]);
    refused.code_is(1);
    assert!(
        refused.stderr.contains(&format!(
            "An image does not exist locally with the tag: {missing}"
        )),
        "{refused}"
    );
    let refused = docker(&d, &["push", &missing]);
    assert!(!refused.success(), "{refused}");
    assert!(
        refused
            .all()
            .contains("An image does not exist locally with the tag"),
        "{refused}"
    );

    // A registry that is down: the error names it.
    let down = format!("127.0.0.1:{}/e2e/down:1", free_port());
    vmrun(&d, &["tag", "busybox", &down]).ok();
    let failed = vmrun(&d, &["push", &down]);
    failed.code_is(1);
    let host = down.split('/').next().unwrap_or_default();
    assert!(failed.stderr.contains(host), "{failed}");
}
