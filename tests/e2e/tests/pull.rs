//! `vmrun pull`, `vmrun login`/`logout` and `run`'s pull of a missing image,
//! against a real registry (Debian's `docker-registry`) on 127.0.0.1.

use std::path::Path;
use std::time::Duration;

use vmrun_e2e::{busybox_tar, require_root, require_tool, run_with_timeout, Daemon};
use vmrun_test_registry::registry::{Auth, Registry};

const PULL_TIMEOUT: Duration = Duration::from_secs(120);

/// Pushes the e2e busybox image to `registry` as `repo_tag` with skopeo.
fn push_busybox(registry: &Registry, repo_tag: &str, creds: Option<&str>) {
    registry.skopeo_push(&busybox_tar(), repo_tag, creds);
}

/// `vmrun` with `DOCKER_CONFIG` pointing at `config_dir`.
fn vmrun_with_config(d: &Daemon, config_dir: &Path, args: &[&str]) -> vmrun_e2e::CmdOutput {
    let mut cmd = d.vmrun_cmd(args);
    cmd.env("DOCKER_CONFIG", config_dir);
    run_with_timeout(cmd, None, PULL_TIMEOUT)
}

#[test]
fn pull_renders_progress_and_the_image_runs() {
    if !require_root() || !require_tool("skopeo") {
        return;
    }
    let d = Daemon::start_empty();
    let Some(registry) = Registry::start(Auth::Anonymous) else {
        return;
    };
    push_busybox(&registry, "test/busybox:1", None);
    push_busybox(&registry, "test/busybox:2", None);
    let config = d.dir().join("docker-config");
    let image = format!("{}/test/busybox:1", registry.addr);

    let out = vmrun_with_config(&d, &config, &["pull", &image]);
    out.ok();
    assert!(out.stdout.contains("1: Pulling from test/busybox"), "{out}");
    assert!(out.stdout.contains(": Pull complete"), "{out}");
    assert!(out.stdout.contains("Digest: sha256:"), "{out}");
    assert!(
        out.stdout
            .contains(&format!("Status: Downloaded newer image for {image}")),
        "{out}"
    );
    assert_eq!(out.stdout.lines().last(), Some(image.as_str()), "{out}");

    let images = d.vmrun(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    images.ok();
    assert!(images.stdout.lines().any(|l| l == image), "{images}");

    // Pulling again changes nothing.
    let again = vmrun_with_config(&d, &config, &["pull", &image]);
    again.ok();
    assert!(
        again
            .stdout
            .contains(&format!("Status: Image is up to date for {image}")),
        "{again}"
    );
    // Quiet: only the reference.
    let quiet = vmrun_with_config(&d, &config, &["pull", "-q", &image]);
    quiet.ok();
    assert_eq!(quiet.stdout, format!("{image}\n"), "{quiet}");

    let run = vmrun_with_config(&d, &config, &["run", "--rm", &image, "echo", "hi"]);
    run.ok();
    assert_eq!(run.stdout, "hi\n", "{run}");

    // `run` of an image not yet here pulls it, progress on stderr.
    let image2 = format!("{}/test/busybox:2", registry.addr);
    let run2 = vmrun_with_config(&d, &config, &["run", "--rm", &image2, "echo", "hi"]);
    run2.ok();
    assert_eq!(run2.stdout, "hi\n", "{run2}");
    // Same layer as tag 1: docker's "Already exists", then the new tag.
    assert!(
        run2.stderr.contains("2: Pulling from test/busybox"),
        "{run2}"
    );
    assert!(run2.stderr.contains(": Already exists"), "{run2}");
    assert!(
        run2.stderr
            .contains(&format!("Status: Downloaded newer image for {image2}")),
        "{run2}"
    );

    // A missing tag: the daemon's message, exit 1.
    let missing = vmrun_with_config(
        &d,
        &config,
        &["pull", &format!("{}/test/busybox:nosuch", registry.addr)],
    );
    missing.code_is(1);
    assert!(missing.stderr.contains("not found"), "{missing}");
}

#[test]
fn pull_all_tags_pulls_every_tag_like_dockerd() {
    if !require_root() || !require_tool("skopeo") || !require_tool("docker") {
        return;
    }
    let d = Daemon::start_empty();
    let Some(registry) = Registry::start(Auth::Anonymous) else {
        return;
    };
    for tag in ["1", "2", "3"] {
        push_busybox(&registry, &format!("test/many:{tag}"), None);
    }
    push_busybox(&registry, "test/other:1", None);
    let repo = format!("{}/test/many", registry.addr);

    // The docker CLI sends no tag for -a: the daemon pulls every tag in order.
    let out = run_with_timeout(d.docker_cmd(&["pull", "-a", &repo]), None, PULL_TIMEOUT);
    out.ok();
    let heads: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.ends_with(": Pulling from test/many"))
        .collect();
    assert_eq!(
        heads,
        [
            "1: Pulling from test/many",
            "2: Pulling from test/many",
            "3: Pulling from test/many"
        ],
        "{out}"
    );
    assert_eq!(out.stdout.matches("Digest: sha256:").count(), 3, "{out}");
    assert!(
        out.stdout
            .contains(&format!("Status: Downloaded newer image for {repo}\n")),
        "{out}"
    );
    let images = d.vmrun(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    images.ok();
    let mut tags: Vec<&str> = images.stdout.lines().collect();
    tags.sort_unstable();
    assert_eq!(
        tags,
        [
            format!("{repo}:1").as_str(),
            format!("{repo}:2").as_str(),
            format!("{repo}:3").as_str()
        ],
        "{images}"
    );

    // vmrun pull -a: the same, nothing new now; -q prints the repository.
    let again = d.vmrun(&["pull", "-a", &repo]);
    again.ok();
    assert!(
        again
            .stdout
            .contains(&format!("Status: Image is up to date for {repo}\n")),
        "{again}"
    );
    let quiet = d.vmrun(&["pull", "-a", "-q", &repo]);
    quiet.ok();
    assert_eq!(quiet.stdout, format!("{repo}\n"), "{quiet}");

    // A tag with -a is refused before anything is sent, as docker does.
    let bad = d.vmrun(&["pull", "-a", &format!("{repo}:1")]);
    bad.code_is(1);
    assert_eq!(
        bad.stderr.trim(),
        "tag can't be used with --all-tags/-a",
        "{bad}"
    );
    // An unknown repository: the daemon's error, exit 1.
    let missing = d.vmrun(&["pull", "-a", &format!("{}/test/nothing", registry.addr)]);
    missing.code_is(1);
    assert!(missing.stderr.contains("not found"), "{missing}");
}

#[test]
fn login_checks_credentials_and_pull_uses_them() {
    if !require_root() || !require_tool("skopeo") {
        return;
    }
    let d = Daemon::start_empty();
    let Some(registry) = Registry::start(Auth::Basic {
        user: "alice".into(),
        password: "s3cret".into(),
    }) else {
        return;
    };
    push_busybox(&registry, "test/busybox:1", Some("alice:s3cret"));
    let config_dir = d.dir().join("docker-config");
    let config_file = config_dir.join("config.json");
    let image = format!("{}/test/busybox:1", registry.addr);

    // Without credentials the pull is refused.
    let refused = vmrun_with_config(&d, &config_dir, &["pull", &image]);
    refused.code_is(1);
    assert!(refused.stderr.contains("unauthorized"), "{refused}");

    let wrong = vmrun_with_config(
        &d,
        &config_dir,
        &["login", "-u", "alice", "-p", "wrong", &registry.addr],
    );
    wrong.code_is(1);
    assert!(wrong.stderr.contains("login attempt failed"), "{wrong}");
    assert!(wrong.stderr.contains("unauthorized"), "{wrong}");
    assert!(
        !config_file.exists(),
        "a failed login wrote {}",
        config_file.display()
    );

    let mut cmd = d.vmrun_cmd(&["login", "-u", "alice", "--password-stdin", &registry.addr]);
    cmd.env("DOCKER_CONFIG", &config_dir);
    let right = run_with_timeout(cmd, Some(b"s3cret\n"), PULL_TIMEOUT);
    right.ok();
    assert!(right.stdout.contains("Login Succeeded"), "{right}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_file).unwrap()).unwrap();
    // base64("alice:s3cret")
    assert_eq!(
        written["auths"][registry.addr.as_str()]["auth"],
        "YWxpY2U6czNjcmV0",
        "{written}"
    );

    // The stored credentials go with the pull.
    let pulled = vmrun_with_config(&d, &config_dir, &["pull", &image]);
    pulled.ok();
    assert!(
        pulled.stdout.contains("Status: Downloaded newer image"),
        "{pulled}"
    );

    let logout = vmrun_with_config(&d, &config_dir, &["logout", &registry.addr]);
    logout.ok();
    assert!(
        logout.stdout.contains("Removing login credentials"),
        "{logout}"
    );
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_file).unwrap()).unwrap();
    assert!(
        after["auths"].get(registry.addr.as_str()).is_none(),
        "{after}"
    );
}
