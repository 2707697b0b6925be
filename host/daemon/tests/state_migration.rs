//! Container records written by earlier daemons load through the current code; records
//! written now round-trip; records of a later version are refused, not lost.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vmrun_daemon::backend::Isolation;
use vmrun_daemon::state::file::{decode, encode, DecodeError, RECORD_VERSION};
use vmrun_daemon::state::{ContainerRecord, ContainerStore, Status, StoreError, RECORD_FILE};

const FIXTURES: [&str; 4] = ["created1", "exited1", "running1", "hostnet"];

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v0")
        .join(format!("{name}.json"))
}

fn fixture(name: &str) -> (Vec<u8>, Value) {
    let data = std::fs::read(fixture_path(name)).expect("fixture");
    let value = serde_json::from_slice(&data).expect("fixture JSON");
    (data, value)
}

fn load_v0(name: &str) -> (ContainerRecord, Value) {
    let (data, value) = fixture(name);
    let (rec, version) = decode(&data).expect("a version-0 record decodes");
    assert_eq!(version, 0, "{name}");
    (rec, value)
}

#[test]
fn version_0_records_keep_every_field() {
    for name in FIXTURES {
        let (rec, old) = load_v0(name);
        assert_eq!(rec.name, name);
        assert_eq!(rec.id, old["id"]);
        assert_eq!(rec.created, old["created"]);
        assert_eq!(rec.image, "busybox");
        assert_eq!(rec.image_id, old["image_id"]);
        assert_eq!(rec.isolation, Isolation::Native);
        assert_eq!(serde_json::to_value(&rec.layers).unwrap(), old["layers"]);
        assert_eq!(rec.path, old["path"]);
        assert_eq!(serde_json::to_value(&rec.args).unwrap(), old["args"]);
        // docker's documents survive whole, fields vmrund does not read included.
        assert_eq!(serde_json::to_value(&rec.config).unwrap(), old["config"]);
        assert_eq!(
            serde_json::to_value(&rec.host_config).unwrap(),
            old["host_config"]
        );
        assert_eq!(rec.network_mode, old["network_mode"]);
        assert_eq!(rec.state.pid, old["state"]["pid"]);
        assert_eq!(rec.state.monitor_pid, old["state"]["shim_pid"]);
        assert_eq!(rec.state.exit_code, old["state"]["exit_code"]);
        assert_eq!(
            serde_json::to_value(&rec.endpoint).unwrap(),
            old["endpoint"]
        );
        assert_eq!(serde_json::to_value(&rec.ports).unwrap(), old["ports"]);
        assert_eq!(serde_json::to_value(&rec.mounts).unwrap(), old["mounts"]);
        assert_eq!(rec.restart_count, 0);
    }
}

#[test]
fn version_0_records_read_as_the_daemon_reads_them() {
    let (created, _) = load_v0("created1");
    assert_eq!(created.state.status, Status::Created);
    let env = created.config.env.clone().unwrap_or_default();
    assert!(env.contains(&"FOO=bar".to_string()), "{env:?}");
    assert_eq!(
        created.config.labels.as_ref().and_then(|l| l.get("app")),
        Some(&"web".to_string())
    );
    assert_eq!(created.config.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(created.config.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(created.config.stop_timeout, Some(3));
    assert_eq!(created.config.exposed_ports(), vec!["80/tcp".to_string()]);
    assert_eq!(created.host_config.memory, Some(64 * 1024 * 1024));
    let bindings = created
        .host_config
        .port_bindings
        .clone()
        .unwrap_or_default();
    let b = bindings["80/tcp"].clone().unwrap_or_default();
    assert_eq!(b[0].host_port.as_deref(), Some("8080"));
    assert_eq!(created.mounts[0].kind, "volume");
    assert_eq!(created.mounts[0].name.as_deref(), Some("vol1"));
    assert_eq!(created.mounts[0].destination, "/data");

    let (exited, _) = load_v0("exited1");
    assert_eq!(exited.state.status, Status::Exited);
    assert_eq!(exited.state.exit_code, 3);
    assert!(exited.state.finished_at.is_some());

    let (running, _) = load_v0("running1");
    assert!(running.is_running());
    assert!(running.tty());
    assert!(running.state.pid > 0 && running.state.monitor_pid > 0);
    assert_eq!(running.config.hostname.as_deref(), Some("box"));
    assert_eq!(running.config.open_stdin, Some(true));
    assert_eq!(running.host_config.pids_limit, Some(50));
    assert_eq!(
        running.host_config.cap_add,
        Some(vec!["CAP_NET_ADMIN".to_string()])
    );
    assert_eq!(running.endpoint.as_ref().map(|e| e.prefix_len), Some(16));
    assert_eq!(running.ports[0].proto, "udp");
    assert_eq!(running.ports[0].host_ip, "127.0.0.1");
    assert!(running.host_config.rest.contains_key("RestartPolicy"));

    let (host, _) = load_v0("hostnet");
    assert_eq!(host.network_mode, "host");
    assert_eq!(host.host_config.privileged, Some(true));
    assert_eq!(host.host_config.readonly_rootfs, Some(true));
    assert_eq!(host.path, "/bin/sh");
}

#[test]
fn records_written_now_round_trip() {
    for name in FIXTURES {
        let (rec, _) = load_v0(name);
        let data = encode(&rec).unwrap();
        let value: Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(value["version"], RECORD_VERSION);
        assert_eq!(value["isolation"], "native");
        let (again, version) = decode(&data).unwrap();
        assert_eq!(version, RECORD_VERSION);
        assert_eq!(again, rec, "{name}");
    }
}

fn data_root_with_fixtures() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let containers = root.path().join("containers");
    for name in FIXTURES {
        let (data, value) = fixture(name);
        let dir = containers.join(value["id"].as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(RECORD_FILE), data).unwrap();
    }
    (root, containers)
}

#[test]
fn a_data_root_of_the_previous_daemon_opens_and_is_rewritten() {
    let (_root, containers) = data_root_with_fixtures();
    let store = ContainerStore::open(&containers).unwrap();
    let mut names: Vec<String> = store.list().into_iter().map(|r| r.name).collect();
    names.sort();
    assert_eq!(names, ["created1", "exited1", "hostnet", "running1"]);
    for rec in store.list() {
        let (expected, _) = load_v0(&rec.name);
        assert_eq!(rec, expected);
        let on_disk: Value = serde_json::from_slice(
            &std::fs::read(containers.join(&rec.id).join(RECORD_FILE)).unwrap(),
        )
        .unwrap();
        assert_eq!(on_disk["version"], RECORD_VERSION, "{}", rec.name);
        assert_eq!(on_disk["state"]["monitor_pid"], rec.state.monitor_pid);
    }
    // Reopened: the same records, now read as the current version.
    let again = ContainerStore::open(&containers).unwrap();
    assert_eq!(again.list(), store.list());
    let renamed = again.resolve("exited1").unwrap();
    again.rename(&renamed.id, "exited2").unwrap();
    let third = ContainerStore::open(&containers).unwrap();
    assert_eq!(third.resolve("exited2").unwrap().state.exit_code, 3);
}

#[test]
fn a_record_of_a_later_version_is_refused_and_kept() {
    let (_root, containers) = data_root_with_fixtures();
    let (_, mut value) = fixture("exited1");
    let id = value["id"].as_str().unwrap().to_string();
    value["version"] = Value::from(RECORD_VERSION + 1);
    let future = serde_json::to_vec(&value).unwrap();
    let path = containers.join(&id).join(RECORD_FILE);
    std::fs::write(&path, &future).unwrap();

    match decode(&future) {
        Err(DecodeError::FutureVersion { found }) => assert_eq!(found, RECORD_VERSION + 1),
        other => panic!(
            "expected a refusal, got {:?}",
            other.map(|(r, v)| (r.id, v))
        ),
    }
    let err = match ContainerStore::open(&containers) {
        Err(e) => e,
        Ok(_) => panic!("a store with a record of a later version opened"),
    };
    assert!(matches!(err, StoreError::Record { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&id), "{text}");
    assert!(
        text.contains(&format!("version {}", RECORD_VERSION + 1)),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        future,
        "the file is untouched"
    );
}

#[test]
fn a_corrupt_record_is_skipped_and_kept() {
    let (_root, containers) = data_root_with_fixtures();
    let dir = containers.join("f".repeat(64));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(RECORD_FILE), b"{not json").unwrap();
    let store = ContainerStore::open(&containers).unwrap();
    assert_eq!(store.list().len(), FIXTURES.len());
    assert_eq!(std::fs::read(dir.join(RECORD_FILE)).unwrap(), b"{not json");
}
