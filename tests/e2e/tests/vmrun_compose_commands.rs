//! `vmrun compose`'s own commands against vmrund, beyond what `vmrun_compose.rs` compares
//! with docker-compose: `config`, `depends_on` on `service_healthy` and
//! `service_completed_successfully`, `env_file` and `${VAR:-default}`, `working_dir` and
//! `user`, `ps` (table, `--format json`, `--services`, `-a`), `logs` with prefixes and
//! `-f`, `stop`/`start`/`restart`, `run` bringing dependencies up first, `up` attached,
//! `--scale` and `deploy.replicas`, a dependency that exits instead of becoming healthy.

use std::time::Duration;

use vmrun_e2e::compose::{Client, ComposeTarget};
use vmrun_e2e::{require_root, run_with_timeout, Daemon};

const PROJECT: &str = "e2evcc";

const FILE: &str = r#"services:
  db:
    image: busybox
    command: sh -c "echo db-ready && exec sleep 600"
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
  init:
    image: busybox
    command: sh -c "echo init-done"
  app:
    image: busybox
    command: sh -c "echo app-up $$(id -u) $$(pwd) $$GREETING $$FROM_DEFAULT && exec sleep 600"
    env_file: ./app.env
    environment:
      FROM_DEFAULT: ${E2E_UNSET_VAR:-dflt}
    working_dir: /tmp
    user: "1000:1000"
    depends_on:
      db:
        condition: service_healthy
      init:
        condition: service_completed_successfully
  many:
    image: busybox
    command: sleep 600
    deploy:
      replicas: 2
"#;

#[test]
fn vmrun_compose_commands_on_vmrund() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("docker-compose.yml"), FILE).expect("file");
    std::fs::write(dir.path().join("app.env"), "GREETING=hi\n").expect("env file");
    let d = Daemon::start();
    let t = ComposeTarget::docker_compose(d.host(), dir.path(), PROJECT).with_client(Client::Vmrun);

    let services = t.compose(&["config", "--services"]);
    assert_eq!(services.stdout, "db\ninit\napp\nmany\n", "{services}");
    assert!(t.compose(&["config", "-q"]).ok().stdout.is_empty());

    let up = t.compose(&["up", "-d"]);
    up.ok();
    assert!(up.stderr.contains("e2evcc-db-1  Healthy"), "{up}");
    assert!(up.stderr.contains("e2evcc-init-1  Exited"), "{up}");
    assert_eq!(
        t.labelled_containers(false),
        ["app 1 False", "db 1 False", "many 1 False", "many 2 False"]
    );
    let json = t.compose(&["ps", "-a", "--format", "json", "init"]);
    assert!(json.stdout.contains("\"State\":\"exited\""), "{json}");
    assert_eq!(t.compose(&["ps", "--services"]).stdout, "app\ndb\nmany\n");
    let table = t.compose(&["ps"]);
    assert!(table.stdout.starts_with("NAME"), "{table}");
    assert!(table.stdout.contains("e2evcc-many-2"), "{table}");

    let env = t.compose(&[
        "exec",
        "-T",
        "app",
        "sh",
        "-c",
        "echo $GREETING $FROM_DEFAULT $(pwd)",
    ]);
    assert_eq!(env.stdout, "hi dflt /tmp\n", "{env}");
    let logs = t.compose(&["logs", "app", "db"]);
    assert!(
        logs.stdout
            .contains("e2evcc-app-1 | app-up 1000 /tmp hi dflt"),
        "{logs}"
    );
    assert!(logs.stdout.contains("e2evcc-db-1  | db-ready"), "{logs}");
    let follow = run_with_timeout(
        t.compose_cmd(&["logs", "-f", "app"]),
        None,
        Duration::from_secs(3),
    );
    assert!(
        follow.timed_out && follow.stdout.contains("app-up"),
        "{follow}"
    );

    let app = t.container_id("app");
    t.compose(&["stop", "-t", "1"]).ok();
    assert!(t.compose(&["ps", "-q"]).stdout.is_empty());
    t.compose(&["start"]).ok();
    assert_eq!(t.compose(&["ps", "--services"]).stdout, "app\ndb\nmany\n");
    let started = |id: &str| {
        t.docker(&["inspect", "-f", "{{.State.StartedAt}}", id])
            .stdout
    };
    let before = started(&app);
    t.compose(&["restart", "-t", "1", "app"]).ok();
    assert_eq!(t.container_id("app"), app, "restart keeps the container");
    assert_ne!(started(&app), before, "and starts it again");
    let scaled = t.compose(&["up", "-d", "--scale", "many=1"]);
    scaled.ok();
    assert!(
        scaled.stderr.contains("e2evcc-app-1  Running"),
        "unchanged: {scaled}"
    );
    assert_eq!(t.compose(&["ps", "-q", "many"]).stdout.lines().count(), 1);
    t.compose(&["down", "-t", "1"]).ok();

    // `run` brings the dependencies up first and gives the command's exit code.
    let run = t.compose(&[
        "run",
        "--rm",
        "-T",
        "app",
        "sh",
        "-c",
        "echo ran-$GREETING; exit 4",
    ]);
    assert_eq!((run.code, run.stdout.as_str()), (4, "ran-hi\n"), "{run}");
    assert_eq!(t.labelled_containers(false), ["db 1 False"]);
    t.compose(&["down", "-t", "1"]).ok();
    assert!(t.labelled_containers(true).is_empty());

    // `up` without -d follows the logs until the containers stop.
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  once:\n    image: busybox\n    command: echo once-done\n",
    )
    .expect("file");
    let attached = t.compose(&["up"]);
    attached.ok();
    assert!(
        attached.stdout.contains("e2evcc-once-1 | once-done"),
        "{attached}"
    );
    t.compose(&["down", "-t", "1"]).ok();
    assert_eq!(t.networks_and_volumes(), (vec![], vec![]));

    // A dependency that exits instead of becoming healthy fails `up`, naming it.
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  dep:\n    image: busybox\n    command: sh -c 'sleep 1; exit 1'\n    healthcheck: {test: [CMD, 'false'], interval: 5s}\n  gated:\n    image: busybox\n    command: sleep 600\n    depends_on: {dep: {condition: service_healthy}}\n",
    )
    .expect("file");
    let failed = t.compose(&["up", "-d"]);
    assert!(
        failed.code == 1
            && failed
                .stderr
                .contains("dependency failed to start: container e2evcc-dep-1 exited (1)"),
        "{failed}"
    );
    assert_eq!(t.labelled_containers(false), Vec::<String>::new());
    t.compose(&["down", "-t", "1"]).ok();
}
