//! `vmrun compose` against vmrund, compared with Debian's docker-compose 1.29 against
//! vmrund and against Debian's dockerd (the oracle), on the same files: a web service and a
//! client that fetches from it by service name once the web is healthy, a named volume
//! that outlives `down` and is gone with `down -v`, a restart policy that brings a crashed
//! service back, `exec`, `run --rm` exit codes; a service with a `build:` section; an image
//! pulled from a real registry on loopback; bad files (unknown key, wrong type, a
//! `depends_on` cycle, an undefined required variable) that are refused with one message
//! and change nothing; `up` that keeps unchanged containers and recreates changed ones;
//! and one project seen by both tools through docker compose's labels.

use std::path::Path;

use vmrun_e2e::compose::{Client, ComposeTarget};
use vmrun_e2e::reference::ReferenceDaemon;
use vmrun_e2e::{busybox_tar, has_tool, require_root, Daemon};
use vmrun_test_registry::registry::{Auth, Registry};

const PROJECT: &str = "e2evc";

/// Skips (and says why) unless root and docker-compose are there.
fn prerequisites() -> bool {
    if !require_root() {
        return false;
    }
    if !has_tool("docker-compose") {
        vmrun_test_skip::report("docker-compose not installed (apt-get install docker-compose)");
        return false;
    }
    true
}

/// The oracle, or `None` with the skip reported.
fn oracle() -> Option<(ReferenceDaemon, String)> {
    match ReferenceDaemon::start() {
        Ok(o) => {
            let host = format!("unix://{}", o.dir().join("d.sock").display());
            Some((o, host))
        }
        Err(reason) => {
            vmrun_test_skip::report(&reason);
            None
        }
    }
}

fn project_dir(file: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("docker-compose.yml"), file).expect("writing the file");
    dir
}

/// The web + client scenario on one client and daemon; what was seen, step by step.
fn app_scenario(t: &ComposeTarget) -> Vec<String> {
    let mut seen = Vec::new();
    let up = t.compose(&["up", "-d"]);
    assert!(up.success(), "up on {} ({:?}): {up}", t.host, t.client);
    seen.push("up ok".to_owned());
    t.until("the client's fetch", || {
        t.compose(&["logs", "--no-color", "client"])
            .stdout
            .contains("hello-from-web")
    });
    seen.push(format!("running: {:?}", t.labelled_containers(false)));
    let fetch = t.compose(&[
        "exec",
        "-T",
        "client",
        "wget",
        "-q",
        "-O-",
        "http://web/index.html",
    ]);
    seen.push(format!("exec by name: {} {:?}", fetch.code, fetch.stdout));
    let write = t.compose(&[
        "exec",
        "-T",
        "web",
        "sh",
        "-c",
        "echo kept > /data/f; cat /data/f",
    ]);
    seen.push(format!("exec volume: {} {:?}", write.code, write.stdout));
    let run = t.compose(&["run", "--rm", "-T", "client", "sh", "-c", "exit 3"]);
    seen.push(format!("run --rm exit code: {}", run.code));
    let web = t.container_id("web");
    let labels = t.docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"e2e.role\"}} {{index .Config.Labels \"com.docker.compose.service\"}} {{index .Config.Labels \"com.docker.compose.oneoff\"}} {{.HostConfig.RestartPolicy.Name}}",
        &web,
    ]);
    seen.push(format!("web labels: {}", labels.stdout.trim()));

    // The restart policy brings a crashed web back (its httpd killed, its shell exits 3).
    t.compose(&["exec", "-T", "web", "killall", "httpd"]);
    t.until("web running again", || {
        let state = t.docker(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.RestartCount}}",
            &web,
        ]);
        let text = state.stdout.trim().to_owned();
        text.starts_with("true ") && !text.ends_with(" 0")
    });
    seen.push("web restarted after a crash".into());

    let down = t.compose(&["down"]);
    assert!(down.success(), "down on {}: {down}", t.host);
    seen.push(format!(
        "after down: {:?} {:?}",
        t.labelled_containers(true),
        t.networks_and_volumes()
    ));
    let up = t.compose(&["up", "-d"]);
    assert!(up.success(), "second up on {}: {up}", t.host);
    let mut kept = String::new();
    t.until("web up again", || {
        kept = t.compose(&["exec", "-T", "web", "cat", "/data/f"]).stdout;
        !kept.is_empty()
    });
    seen.push(format!("volume content after down and up: {:?}", kept));
    let down = t.compose(&["down", "-v"]);
    assert!(down.success(), "down -v on {}: {down}", t.host);
    seen.push(format!(
        "after down -v: {:?} {:?}",
        t.labelled_containers(true),
        t.networks_and_volumes()
    ));
    seen
}

#[test]
fn vmrun_compose_matches_docker_compose_on_vmrund_and_dockerd() {
    if !prerequisites() {
        return;
    }
    let dir = project_dir(vmrun_e2e::compose::WEB_AND_CLIENT);
    let d = Daemon::start();
    let target = ComposeTarget::docker_compose(d.host(), dir.path(), PROJECT);
    let ours = app_scenario(&target.with_client(Client::Vmrun));
    eprintln!("vmrun compose on vmrund: {ours:#?}");
    assert!(
        ours.contains(&"exec by name: 0 \"hello-from-web\\n\"".to_owned()),
        "{ours:#?}"
    );
    assert!(
        ours.contains(&"run --rm exit code: 3".to_owned()),
        "{ours:#?}"
    );
    let compose_on_ours = app_scenario(&target);
    eprintln!("docker-compose on vmrund: {compose_on_ours:#?}");
    assert_eq!(ours, compose_on_ours);
    drop(d);
    let Some((_oracle, host)) = oracle() else {
        return;
    };
    let theirs = app_scenario(&ComposeTarget::docker_compose(host, dir.path(), PROJECT));
    assert_eq!(ours, theirs);
}

/// Bad files: each refused before anything is made.
const BAD_FILES: [(&str, &str, &str); 4] = [
    (
        "unknown key",
        "services:\n  web:\n    image: busybox\n    volumes: [data:/data]\n    commandd: sleep 1\nvolumes:\n  data:\n",
        "service \"web\": key \"commandd\": unknown key",
    ),
    (
        "wrong type",
        "services:\n  web:\n    image: busybox\n    volumes: [data:/data]\n    ports: 80\nvolumes:\n  data:\n",
        "service \"web\": key \"ports\": invalid type",
    ),
    (
        "depends_on cycle",
        "services:\n  a:\n    image: busybox\n    volumes: [data:/data]\n    depends_on: [b]\n  b:\n    image: busybox\n    depends_on: [a]\nvolumes:\n  data:\n",
        "dependency cycle: a -> b -> a",
    ),
    (
        "undefined required variable",
        "services:\n  web:\n    image: \"busybox:${E2E_UNSET_TAG:?set E2E_UNSET_TAG}\"\n    volumes: [data:/data]\nvolumes:\n  data:\n",
        "service \"web\": key \"image\": required variable E2E_UNSET_TAG is missing a value: set E2E_UNSET_TAG",
    ),
];

/// For each bad file: refused or not, and whether anything was left behind.
fn bad_file_outcomes(t: &ComposeTarget) -> Vec<String> {
    let mut seen = Vec::new();
    for (what, text, message) in BAD_FILES {
        std::fs::write(t.dir.join(&t.file), text).expect("writing the file");
        let up = t.compose(&["up", "-d"]);
        if t.client == Client::Vmrun {
            let stderr = up.stderr.trim();
            assert_eq!(stderr.lines().count(), 1, "{what}: one message: {up}");
            assert!(
                stderr.contains(&t.file) && stderr.contains(message),
                "{what}: {up}"
            );
        }
        seen.push(format!(
            "{what}: refused {} leaves {:?} {:?}",
            up.code != 0,
            t.labelled_containers(true),
            t.networks_and_volumes()
        ));
    }
    seen
}

#[test]
fn bad_files_are_refused_with_one_message_and_change_nothing() {
    if !prerequisites() {
        return;
    }
    let dir = project_dir("");
    let d = Daemon::start();
    let target = ComposeTarget::docker_compose(d.host(), dir.path(), PROJECT);
    let ours = bad_file_outcomes(&target.with_client(Client::Vmrun));
    eprintln!("vmrun compose: {ours:#?}");
    assert!(
        ours.iter()
            .all(|o| o.contains("refused true leaves [] ([], [])")),
        "{ours:#?}"
    );
    assert_eq!(ours, bad_file_outcomes(&target));
    drop(d);
    let Some((_oracle, host)) = oracle() else {
        return;
    };
    let theirs = bad_file_outcomes(&ComposeTarget::docker_compose(host, dir.path(), PROJECT));
    assert_eq!(ours, theirs);
}

const TWO_SERVICES: &str = "services:\n  a:\n    image: busybox\n    command: sleep 600\n  b:\n    image: busybox\n    command: sleep 600\n";

#[test]
fn up_keeps_unchanged_containers_and_recreates_changed_ones() {
    if !prerequisites() {
        return;
    }
    let dir = project_dir(TWO_SERVICES);
    let d = Daemon::start();
    let ours =
        ComposeTarget::docker_compose(d.host(), dir.path(), PROJECT).with_client(Client::Vmrun);
    ours.compose(&["up", "-d"]).ok();
    let (a, b) = (ours.container_id("a"), ours.container_id("b"));
    assert!(!a.is_empty() && !b.is_empty());
    ours.compose(&["up", "-d"]).ok();
    assert_eq!(
        (ours.container_id("a"), ours.container_id("b")),
        (a.clone(), b.clone()),
        "unchanged: kept"
    );
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        TWO_SERVICES
            .replacen("sleep 600", "sleep 601", 2)
            .replacen("sleep 601", "sleep 600", 1),
    )
    .unwrap();
    ours.compose(&["up", "-d"]).ok();
    assert_eq!(ours.container_id("a"), a, "a did not change: kept");
    let b2 = ours.container_id("b");
    assert!(!b2.is_empty() && b2 != b, "b changed: recreated");
    // docker-compose 1.29 sees the project vmrun compose made, by its labels.
    let ps = ours.with_client(Client::DockerCompose).compose(&["ps"]);
    assert!(
        ps.stdout.contains("e2evc-a-1") && ps.stdout.contains("e2evc-b-1"),
        "{ps}"
    );
    let ps = ours.compose(&["ps", "--services"]);
    assert_eq!(ps.stdout, "a\nb\n", "{ps}");
    ours.compose(&["down"]).ok();
    // And vmrun compose sees (and takes down) what docker-compose 1.29 made.
    let theirs = ours.with_client(Client::DockerCompose);
    theirs.compose(&["up", "-d"]).ok();
    let ps = ours.compose(&["ps"]);
    assert!(
        ps.stdout.contains("e2evc_a_1") && ps.stdout.contains("e2evc_b_1"),
        "{ps}"
    );
    ours.compose(&["down"]).ok();
    assert_eq!(ours.labelled_containers(true), Vec::<String>::new());
    assert_eq!(ours.networks_and_volumes(), (vec![], vec![]));
}

const BUILD_FILE: &str =
    "services:\n  app:\n    build: ./app\n    command: sh -c \"cat /built && exec sleep 600\"\n";

fn build_scenario(t: &ComposeTarget) -> Vec<String> {
    let up = t.compose(&["up", "-d", "--build"]);
    assert!(up.success(), "up --build on {}: {up}", t.host);
    let mut out = String::new();
    t.until("the built file", || {
        out = t.compose(&["logs", "--no-color", "app"]).stdout;
        out.contains("built-by-compose")
    });
    let again = t.compose(&["build"]);
    let seen = vec![
        format!("running: {:?}", t.labelled_containers(false)),
        "log shows the built file".to_owned(),
        format!("build again: {}", again.code),
    ];
    t.compose(&["down"]).ok();
    seen
}

#[test]
fn build_sections_are_built_like_docker_compose_does() {
    if !prerequisites() {
        return;
    }
    let dir = project_dir(BUILD_FILE);
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(
        dir.path().join("app/Dockerfile"),
        "FROM busybox\nRUN echo built-by-compose > /built\n",
    )
    .unwrap();
    let d = Daemon::start();
    let target = ComposeTarget::docker_compose(d.host(), dir.path(), PROJECT);
    let ours = build_scenario(&target.with_client(Client::Vmrun));
    assert_eq!(ours, build_scenario(&target));
    drop(d);
    let Some((_oracle, host)) = oracle() else {
        return;
    };
    assert_eq!(
        ours,
        build_scenario(&ComposeTarget::docker_compose(host, dir.path(), PROJECT))
    );
}

fn pull_outcome(t: &ComposeTarget, image: &str) -> String {
    let pull = t.compose(&["pull"]);
    let present = t.docker(&["image", "inspect", "-f", "ok", image]);
    format!("pull {} image {}", pull.code, present.stdout.trim())
}

#[test]
fn pull_fetches_service_images_from_a_registry() {
    if !prerequisites() || !vmrun_e2e::require_tool("skopeo") {
        return;
    }
    let Some(registry) = Registry::start(Auth::Anonymous) else {
        return;
    };
    registry.skopeo_push(&busybox_tar(), "e2e/busybox:1", None);
    let image = format!("{}/e2e/busybox:1", registry.addr);
    let dir = project_dir(&format!(
        "services:\n  s:\n    image: {image}\n    command: sleep 600\n"
    ));
    let d = Daemon::start_empty();
    let target = ComposeTarget::docker_compose(d.host(), dir.path(), PROJECT);
    let ours = pull_outcome(&target.with_client(Client::Vmrun), &image);
    assert_eq!(ours, "pull 0 image ok");
    d.vmrun(&["rmi", &image]).ok();
    assert_eq!(pull_outcome(&target, &image), ours);
}

#[test]
fn extends_and_profiles_agree_with_docker_compose() {
    if !prerequisites() {
        return;
    }
    let file = "services:\n  base:\n    image: busybox\n    command: sleep 600\n    environment: {FROM_BASE: \"yes\"}\n  app:\n    extends: base\n  debug:\n    image: busybox\n    command: sleep 600\n    profiles: [debug]\n";
    let dir = project_dir(file);
    empty_dotenv(dir.path());
    let d = Daemon::start();
    let target = ComposeTarget::docker_compose(d.host(), dir.path(), PROJECT);
    let outcome = |t: &ComposeTarget| {
        t.compose(&["up", "-d"]).ok();
        let plain = t.labelled_containers(false);
        let env = t.docker(&[
            "inspect",
            "-f",
            "{{range .Config.Env}}{{println .}}{{end}}",
            &t.container_id("app"),
        ]);
        let from_base = env.stdout.lines().any(|l| l == "FROM_BASE=yes");
        t.compose(&["--profile", "debug", "up", "-d"]).ok();
        let with_debug = t.labelled_containers(false);
        t.compose(&["--profile", "debug", "down"]).ok();
        format!("{plain:?} extends env {from_base} with debug {with_debug:?}")
    };
    let ours = outcome(&target.with_client(Client::Vmrun));
    assert_eq!(
        ours,
        "[\"app 1 False\", \"base 1 False\"] extends env true with debug [\"app 1 False\", \"base 1 False\", \"debug 1 False\"]"
    );
    assert_eq!(outcome(&target), ours);
}

/// docker-compose 1.29 reads `.env` from the project directory: an empty one keeps the
/// host's environment out of both clients alike.
fn empty_dotenv(dir: &Path) {
    std::fs::write(dir.join(".env"), "").expect("writing .env");
}
