//! Loading whole projects from files: discovery, `.env`, `-f` merging, `extends`,
//! `profiles`, and the one clear message each kind of bad file gets.

use std::path::{Path, PathBuf};

use vmrun_compose::model::{Condition, MountKind};
use vmrun_compose::{config_hash, load_project, start_order, ComposeError, LoadOptions};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn options(dir: &Path) -> LoadOptions {
    LoadOptions {
        cwd: dir.to_path_buf(),
        ..LoadOptions::default()
    }
}

const WEB: &str = r#"
services:
  web:
    image: busybox
    command: sh -c "httpd -f -p 80"
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://localhost/"]
      interval: 1s
      retries: 30
    ports: ["127.0.0.1:${PORT:-8080}:80"]
    volumes: [data:/data, ./site:/www:ro]
    labels: [e2e.role=server]
    restart: always
  client:
    image: busybox
    command: ["wget", "-q", "-O-", "http://web/"]
    depends_on:
      web:
        condition: service_healthy
    deploy:
      replicas: 2
volumes:
  data:
"#;

#[test]
fn a_project_loads_with_names_and_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "compose.yaml", WEB);
    write(dir.path(), ".env", "PORT=9090\n");
    let mut opts = options(dir.path());
    opts.project_name = Some("My_App".into());
    let project = load_project(&opts).unwrap();
    assert_eq!(project.name, "my_app");
    assert_eq!(project.networks["default"].name, "my_app_default");
    assert_eq!(project.volumes["data"].name, "my_app_data");
    let web = &project.services["web"];
    assert_eq!(
        web.command.as_ref().unwrap(),
        &["sh", "-c", "httpd -f -p 80"]
    );
    assert_eq!(web.ports[0].spec(), "127.0.0.1:9090:80/tcp");
    assert_eq!(web.volumes[1].kind, MountKind::Bind);
    assert_eq!(
        web.volumes[1].source,
        dir.path().join("site").display().to_string()
    );
    assert_eq!(web.labels["e2e.role"], "server");
    assert_eq!(
        web.healthcheck.as_ref().unwrap().interval,
        Some(1_000_000_000)
    );
    let client = &project.services["client"];
    assert_eq!(client.replicas, 2);
    assert_eq!(
        client.depends_on["web"].condition,
        Condition::ServiceHealthy
    );
    assert_eq!(start_order(&project, "").unwrap(), vec!["web", "client"]);
    assert_eq!(project.container_name(client, 2), "my_app-client-2");
    // The process environment wins over .env.
    opts.process_env.insert("PORT".into(), "7070".into());
    let again = load_project(&opts).unwrap();
    assert_eq!(again.services["web"].ports[0].published, "7070");
    assert_ne!(config_hash(&again.services["web"]), config_hash(web));
    assert_eq!(config_hash(&again.services["client"]), config_hash(client));
}

#[test]
fn files_are_found_in_parents_and_named_after_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("App.Dir");
    std::fs::create_dir_all(app.join("sub")).unwrap();
    write(
        &app,
        "docker-compose.yml",
        "services:\n  a: {image: busybox}\n",
    );
    write(
        &app,
        "docker-compose.override.yml",
        "services:\n  a: {command: [true]}\n",
    );
    let project = load_project(&options(&app.join("sub"))).unwrap();
    assert_eq!(project.name, "appdir");
    assert_eq!(project.config_files.len(), 2);
    assert_eq!(project.services["a"].command.as_ref().unwrap(), &["true"]);
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        load_project(&options(empty.path())),
        Err(ComposeError::NoFile { .. })
    ));
}

#[test]
fn several_files_merge_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.yml", "services:\n  s:\n    image: busybox\n    environment: {A: '1', B: '2'}\n    ports: ['80']\n");
    let b = write(dir.path(), "b.yml", "services:\n  s:\n    image: busybox:1\n    environment: [B=3]\n    ports: ['81']\n  t: {image: busybox}\n");
    let mut opts = options(dir.path());
    opts.files = vec![a, b];
    let project = load_project(&opts).unwrap();
    let s = &project.services["s"];
    assert_eq!(s.image, "busybox:1");
    assert_eq!(s.environment["A"], "1");
    assert_eq!(s.environment["B"], "3");
    assert_eq!(s.ports.len(), 2);
    assert!(project.services.contains_key("t"));
}

#[test]
fn extends_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "common.yml",
        "services:\n  base:\n    image: busybox\n    environment: {FROM: common}\n",
    );
    write(
        dir.path(),
        "compose.yaml",
        "services:\n  app:\n    extends: {file: common.yml, service: base}\n    command: [sleep, '1']\n  debug:\n    extends: app\n    profiles: [debug]\n",
    );
    let project = load_project(&options(dir.path())).unwrap();
    assert_eq!(project.services["app"].environment["FROM"], "common");
    assert!(!project.services.contains_key("debug"));
    assert_eq!(project.disabled, vec!["debug"]);
    let mut opts = options(dir.path());
    opts.profiles = vec!["debug".into()];
    let project = load_project(&opts).unwrap();
    assert_eq!(
        project.services["debug"].command.as_ref().unwrap(),
        &["sleep", "1"]
    );
    let mut opts = options(dir.path());
    opts.services = vec!["debug".into()];
    assert!(load_project(&opts).unwrap().services.contains_key("debug"));
}

fn error_of(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "compose.yaml", text);
    let err = load_project(&options(dir.path())).unwrap_err().to_string();
    err.replace(&dir.path().display().to_string(), "DIR")
}

#[test]
fn bad_files_name_file_service_and_key() {
    assert_eq!(
        error_of("services:\n  web:\n    image: busybox\n    portz: ['80']\n"),
        "DIR/compose.yaml: service \"web\": key \"portz\": unknown key"
    );
    assert_eq!(
        error_of("services:\n  web:\n    image: busybox\n    healthcheck: {intervall: 1s}\n"),
        "DIR/compose.yaml: service \"web\": key \"healthcheck.intervall\": unknown key"
    );
    assert_eq!(
        error_of("servics:\n  web: {image: busybox}\n"),
        "DIR/compose.yaml: key \"servics\": unknown key"
    );
    let wrong = error_of("services:\n  web:\n    image: busybox\n    ports: 80\n");
    assert!(
        wrong.starts_with("DIR/compose.yaml: service \"web\": key \"ports\": invalid type"),
        "{wrong}"
    );
    let wrong = error_of("services:\n  web:\n    image: busybox\n    command: {a: b}\n");
    assert_eq!(wrong, "DIR/compose.yaml: service \"web\": key \"command\": expected a string or a list of strings, found a mapping");
    let cycle = error_of("services:\n  a: {image: busybox, depends_on: [b]}\n  b: {image: busybox, depends_on: [c]}\n  c: {image: busybox, depends_on: [a]}\n");
    assert_eq!(
        cycle,
        "DIR/compose.yaml: dependency cycle: a -> b -> c -> a"
    );
    let missing = error_of("services:\n  web:\n    image: \"busybox:${TAG:?TAG must be set}\"\n");
    assert_eq!(missing, "DIR/compose.yaml: service \"web\": key \"image\": required variable TAG is missing a value: TAG must be set");
    let undefined = error_of("services:\n  a: {image: busybox, depends_on: [nope]}\n");
    assert_eq!(undefined, "DIR/compose.yaml: service \"a\": key \"depends_on\": depends on service \"nope\", which is not defined");
    let volume = error_of("services:\n  a: {image: busybox, volumes: ['v:/v']}\n");
    assert!(
        volume.contains("named volume \"v\" is not declared"),
        "{volume}"
    );
    let no_image = error_of("services:\n  a: {command: [x]}\n");
    assert!(
        no_image.contains("service \"a\": key \"image\": a service needs an image"),
        "{no_image}"
    );
    let yaml = error_of("services: [\n");
    assert!(yaml.starts_with("DIR/compose.yaml: invalid YAML"), "{yaml}");
}
