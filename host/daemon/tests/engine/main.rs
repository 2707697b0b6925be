//! The engine in-process, over a [`fake::FakeBackend`]: lifecycle, exec, names, events
//! and a daemon restart, without root.

mod fake;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bollard_stubs::models::{ContainerCreateBody, HostConfig, PortBinding};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;
use vmrun_daemon::backend::{AttachOptions, BackendError, Backends, ExecSpec, Isolation};
use vmrun_daemon::engine::{CreateRequest, Engine, EngineError, EngineParts, Event, WaitCondition};
use vmrun_daemon::state::Status;
use vmrun_daemon::vm::VmSupport;
use vmrun_daemon::DaemonConfig;
use vmrun_images::{ImageStore, ImportOptions};

use fake::FakeBackend;

/// A data root with one image, `app:latest` (`CMD ["/bin/app", "serve"]`, `ENV A=1`).
fn data_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let images = ImageStore::open(&root.path().join("data/images")).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let body = b"#!/bin/sh\n";
    header.set_size(body.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "bin/app", &body[..]).unwrap();
    let data = tar.into_inner().unwrap();
    images
        .import(
            &mut data.as_slice(),
            &ImportOptions {
                reference: Some("app:latest".into()),
                message: None,
                changes: vec![r#"CMD ["/bin/app", "serve"]"#.into(), "ENV A=1".into()],
                platform: None,
            },
        )
        .unwrap();
    root
}

/// An engine over `root` whose native containers run in `fake`.
fn engine(root: &Path, fake: &Arc<FakeBackend>) -> Arc<Engine> {
    let backends = Backends::new()
        .with(Isolation::Native, fake.clone())
        .without(Isolation::Vm, "not in these tests");
    engine_with(root, backends)
}

/// An engine over `root` with `backends`.
fn engine_with(root: &Path, backends: Backends) -> Arc<Engine> {
    let mut config = DaemonConfig::with_defaults();
    config.data_root = root.join("data");
    config.exec_root = root.join("run");
    config.socket = root.join("d.sock");
    let images = Arc::new(ImageStore::open(&config.data_root.join("images")).unwrap());
    let caps = vmrun_vm::HostCaps {
        kvm: vmrun_vm::KvmStatus::Unusable("tests".into()),
        vmm_binary: None,
        qemu: None,
        vhost_device_vsock: None,
    };
    let vm = VmSupport::from_caps(vmrun_vm::BackendChoice::Auto, &caps).unwrap();
    Arc::new(
        Engine::new(EngineParts {
            config,
            images,
            network: None,
            vm,
            backends,
        })
        .unwrap(),
    )
}

fn setup() -> (tempfile::TempDir, Arc<FakeBackend>, Arc<Engine>) {
    let root = data_root();
    let fake = FakeBackend::new(&root.path().join("fake"));
    let engine = engine(root.path(), &fake);
    (root, fake, engine)
}

fn body(host_config: HostConfig) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some("app".into()),
        host_config: Some(host_config),
        ..Default::default()
    }
}

async fn create(
    engine: &Engine,
    name: &str,
    b: ContainerCreateBody,
) -> Result<String, EngineError> {
    engine
        .create_container(CreateRequest {
            name: Some(name.into()),
            body: b,
            isolation: None,
        })
        .await
        .map(|(id, _)| id)
}

async fn wait_exit(engine: &Engine, id: &str) -> i32 {
    let fut = engine
        .wait_container(id, WaitCondition::NotRunning)
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("the container exits")
        .unwrap()
}

/// Every event received so far.
fn drain(rx: &mut broadcast::Receiver<Event>) -> Vec<Event> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// The events of container `id`, as `action` or `action:exitCode`.
fn of(events: &[Event], id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|ev| ev.typ == "container" && ev.actor.id == id)
        .map(|ev| match ev.attr("exitCode") {
            Some(c) => format!("{}:{c}", ev.action),
            None => ev.action.clone(),
        })
        .collect()
}

/// The events of container `id` received so far (others are dropped).
fn actions(rx: &mut broadcast::Receiver<Event>, id: &str) -> Vec<String> {
    of(&drain(rx), id)
}

/// Until `f` holds (the engine records exits in a task of its own).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn create_start_exit_and_wait() {
    let (_root, fake, engine) = setup();
    let mut events = engine.events.subscribe();
    let hc = HostConfig {
        memory: Some(64 << 20),
        port_bindings: Some(HashMap::from([(
            "80/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some("8080".into()),
            }]),
        )])),
        ..Default::default()
    };
    let mut b = body(hc);
    b.env = Some(vec!["B=2".into()]);
    let id = create(&engine, "web", b).await.unwrap();
    let rec = engine.container("web").unwrap();
    assert_eq!(rec.id, id);
    assert_eq!(rec.state.status, Status::Created);
    assert_eq!(rec.isolation, Isolation::Native);

    assert!(engine.start_container("web").await.unwrap());
    assert!(
        !engine.start_container("web").await.unwrap(),
        "already running: 304"
    );
    let spec = fake.spec(&id);
    assert_eq!(spec.process.args, ["/bin/app", "serve"]);
    assert!(spec.process.env.contains(&"A=1".to_string()));
    assert!(spec.process.env.contains(&"B=2".to_string()));
    assert_eq!(spec.hostname, &id[..12]);
    assert_eq!(spec.resources.memory, Some(64 << 20));
    assert_eq!(spec.ports.len(), 1);
    assert_eq!(spec.ports[0].container_port, 80);
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.state.status, Status::Running);
    assert_eq!(rec.state.pid, fake.init(&id).pid);
    assert_eq!(
        rec.endpoint.as_ref().map(|e| e.ip.as_str()),
        Some("10.88.0.2")
    );
    assert_eq!(rec.ports[0].host_port, 8080);
    assert!(rec.state.started_at.is_some());
    assert_eq!(engine.container_pids(&rec).await.unwrap(), [rec.state.pid]);
    let stats = engine.container_stats(&rec, None).await.unwrap();
    assert_eq!(stats.memory_stats.and_then(|m| m.limit), Some(64 << 20));

    let waiter = engine.wait_container(&id, WaitCondition::NextExit).unwrap();
    fake.init(&id).exit(3);
    assert_eq!(waiter.await.unwrap(), 3);
    eventually("the exit is recorded", || {
        engine.container(&id).unwrap().state.status == Status::Exited
    })
    .await;
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.state.exit_code, 3);
    assert_eq!(rec.state.pid, 0);
    assert!(rec.ports.is_empty());
    assert_eq!(fake.released(&id), 1);
    assert_eq!(wait_exit(&engine, &id).await, 3, "not running: at once");
    assert_eq!(actions(&mut events, &id), ["create", "start", "die:3"]);
    let err = engine.container_pids(&rec).await.unwrap_err();
    assert_eq!(
        err,
        EngineError::NotRunning(format!("container {id} is not running"))
    );
}

#[tokio::test]
async fn stop_signals_then_kills() {
    let (_root, fake, engine) = setup();
    let mut b = body(HostConfig::default());
    b.stop_signal = Some("SIGINT".into());
    let id = create(&engine, "stubborn", b).await.unwrap();
    assert!(
        !engine.stop_container(&id, Some(1)).await.unwrap(),
        "not running: 304"
    );
    engine.start_container(&id).await.unwrap();
    fake.ignore(&id, libc::SIGINT);
    assert!(engine.stop_container(&id, Some(1)).await.unwrap());
    assert_eq!(fake.signals(&id), [libc::SIGINT, libc::SIGKILL]);
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.state.status, Status::Exited);
    assert_eq!(rec.state.exit_code, 137);
    assert!(rec.state.stopped_by_user);

    // A container that honours its stop signal is not killed.
    let id2 = create(&engine, "polite", body(HostConfig::default()))
        .await
        .unwrap();
    engine.start_container(&id2).await.unwrap();
    engine.stop_container(&id2, Some(10)).await.unwrap();
    assert_eq!(fake.signals(&id2), [libc::SIGTERM]);
    assert_eq!(engine.container(&id2).unwrap().state.exit_code, 143);
}

#[tokio::test]
async fn kill_and_restart() {
    let (_root, fake, engine) = setup();
    let mut events = engine.events.subscribe();
    let id = create(&engine, "kk", body(HostConfig::default()))
        .await
        .unwrap();
    let err = engine.kill_container("kk", "KILL").await.unwrap_err();
    assert_eq!(
        err,
        EngineError::NotRunning(format!(
            "Cannot kill container: kk: Container {id} is not running"
        ))
    );
    assert_eq!(
        engine.kill_container("kk", "NOPE").await.unwrap_err(),
        EngineError::BadRequest("Invalid signal: NOPE".into())
    );
    engine.start_container("kk").await.unwrap();
    let first = fake.init(&id);
    engine.kill_container("kk", "TERM").await.unwrap();
    assert_eq!(wait_exit(&engine, &id).await, 143);
    eventually("the exit is recorded", || {
        !engine.container(&id).unwrap().is_running()
    })
    .await;

    engine.restart_container("kk", Some(1)).await.unwrap();
    let second = fake.init(&id);
    assert_ne!(first.pid, second.pid);
    assert!(second.started());
    assert_eq!(engine.container(&id).unwrap().state.pid, second.pid);
    engine.restart_container("kk", Some(1)).await.unwrap();
    assert!(fake.init(&id).started());
    assert_eq!(
        actions(&mut events, &id),
        ["create", "start", "kill", "die:143", "start", "restart", "die:143", "start", "restart"]
    );
}

#[tokio::test]
async fn remove_running_needs_force() {
    let (_root, fake, engine) = setup();
    let mut events = engine.events.subscribe();
    let id = create(&engine, "rr", body(HostConfig::default()))
        .await
        .unwrap();
    engine.start_container(&id).await.unwrap();
    let err = engine.remove_container("rr", false).await.unwrap_err();
    assert_eq!(
        err,
        EngineError::Conflict("cannot remove container \"/rr\": container is running: stop the container before removing or force remove".into())
    );
    engine.remove_container("rr", true).await.unwrap();
    assert!(fake.removed(&id));
    assert_eq!(fake.signals(&id), [libc::SIGKILL]);
    assert_eq!(
        engine.container("rr").unwrap_err(),
        EngineError::NotFound("No such container: rr".into())
    );
    assert_eq!(
        engine.remove_container("rr", true).await.unwrap_err(),
        EngineError::NotFound("No such container: rr".into())
    );
    assert_eq!(
        actions(&mut events, &id),
        ["create", "start", "die:137", "destroy"]
    );
    assert!(engine.store.list().is_empty());
}

#[tokio::test]
async fn auto_remove_on_exit() {
    let (_root, fake, engine) = setup();
    let id = create(
        &engine,
        "gone",
        body(HostConfig {
            auto_remove: Some(true),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let removed = engine.wait_container(&id, WaitCondition::Removed).unwrap();
    engine.start_container(&id).await.unwrap();
    fake.init(&id).exit(0);
    assert_eq!(removed.await.unwrap(), 0);
    assert!(fake.removed(&id));
    assert!(engine.container(&id).is_err());
}

#[tokio::test]
async fn names_conflict_and_rename() {
    let (_root, _fake, engine) = setup();
    let mut events = engine.events.subscribe();
    let a = create(&engine, "aa", body(HostConfig::default()))
        .await
        .unwrap();
    let err = create(&engine, "aa", body(HostConfig::default()))
        .await
        .unwrap_err();
    assert_eq!(err, EngineError::Conflict(format!("Conflict. The container name \"/aa\" is already in use by container \"{a}\". You have to remove (or rename) that container to be able to reuse that name.")));
    assert_eq!(
        create(&engine, "-bad", body(HostConfig::default()))
            .await
            .unwrap_err(),
        EngineError::BadRequest(
            "Invalid container name (-bad), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed".into()
        )
    );
    engine.rename_container("aa", "/bb").unwrap();
    assert_eq!(engine.container("bb").unwrap().id, a);
    assert!(engine.container("aa").is_err());
    let c = create(&engine, "aa", body(HostConfig::default()))
        .await
        .unwrap();
    assert!(matches!(
        engine.rename_container("bb", "aa").unwrap_err(),
        EngineError::Conflict(_)
    ));
    assert!(matches!(
        engine.rename_container("bb", "x y").unwrap_err(),
        EngineError::BadRequest(_)
    ));
    assert_eq!(
        engine.rename_container("nope", "z").unwrap_err(),
        EngineError::NotFound("No such container: nope".into())
    );
    // An id prefix finds the container too.
    assert_eq!(engine.container(&c[..10]).unwrap().name, "aa");
    assert_eq!(actions(&mut events, &a), ["create", "rename"]);
}

#[tokio::test]
async fn create_checks_the_request() {
    let (_root, _fake, engine) = setup();
    let mut b = body(HostConfig::default());
    b.image = Some("nope".into());
    assert_eq!(
        create(&engine, "xx", b).await.unwrap_err(),
        EngineError::NotFound("No such image: nope".into())
    );
    let hc = HostConfig {
        port_bindings: Some(HashMap::from([("80/sctp".to_string(), None)])),
        ..Default::default()
    };
    assert_eq!(
        create(&engine, "xx", body(hc)).await.unwrap_err(),
        EngineError::BadRequest("invalid protocol \"sctp\" in port 80/sctp: use tcp or udp".into())
    );
    let hc = HostConfig {
        network_mode: Some("elsewhere".into()),
        ..Default::default()
    };
    assert_eq!(
        create(&engine, "xx", body(hc)).await.unwrap_err(),
        EngineError::NotFound("network elsewhere not found".into())
    );
    assert!(engine.store.list().is_empty());
}

#[tokio::test]
async fn isolation_picks_an_available_backend() {
    let (_root, _fake, engine) = setup();
    let vm = engine
        .create_container(CreateRequest {
            name: Some("vm".into()),
            body: body(HostConfig::default()),
            isolation: Some("vm".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(
        vm,
        EngineError::BadRequest(
            "isolation vm is not available on this daemon: not in these tests".into()
        )
    );
    let hc = HostConfig {
        runtime: Some("crun".into()),
        ..Default::default()
    };
    assert_eq!(
        create(&engine, "crun", body(hc)).await.unwrap_err(),
        EngineError::BadRequest("unknown or invalid runtime name: crun".into())
    );
    let hc = HostConfig {
        runtime: Some("runc".into()),
        ..Default::default()
    };
    let id = create(&engine, "runc", body(hc)).await.unwrap();
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.isolation, Isolation::Native);
    assert_eq!(rec.host_config.runtime.as_deref(), Some("runc"));
}

#[tokio::test]
async fn start_failures_are_recorded() {
    let (_root, fake, engine) = setup();
    let id = create(&engine, "ff", body(HostConfig::default()))
        .await
        .unwrap();
    fake.fail_next_start(BackendError::NotFound(
        "exec: \"/bin/app\": no such file".into(),
    ));
    let err = engine.start_container("ff").await.unwrap_err();
    assert_eq!(
        err,
        EngineError::BadRequest("exec: \"/bin/app\": no such file".into())
    );
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.state.status, Status::Created);
    assert_eq!(rec.state.exit_code, 127);
    assert_eq!(rec.state.error, "exec: \"/bin/app\": no such file");
    assert_eq!(fake.released(&id), 1);

    fake.fail_next_create(BackendError::Failed("no room".into()));
    assert_eq!(
        engine.start_container("ff").await.unwrap_err(),
        EngineError::Internal("no room".into())
    );
    assert_eq!(engine.container(&id).unwrap().state.exit_code, 128);
    // And then it starts.
    engine.start_container("ff").await.unwrap();
    assert!(engine.container(&id).unwrap().is_running());
}

fn exec_spec(cmd: &[&str]) -> ExecSpec {
    ExecSpec {
        id: String::new(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        workdir: None,
        user: None,
        tty: false,
        open_stdin: false,
        privileged: false,
        console_size: None,
    }
}

#[tokio::test]
async fn exec_runs_in_a_running_container() {
    let (_root, fake, engine) = setup();
    let mut events = engine.events.subscribe();
    let id = create(&engine, "ee", body(HostConfig::default()))
        .await
        .unwrap();
    let attach = AttachOptions {
        stdout: true,
        ..Default::default()
    };
    assert_eq!(
        engine
            .exec_create("ee", exec_spec(&["ls"]), attach)
            .unwrap_err(),
        EngineError::NotRunning(format!("container {id} is not running"))
    );
    engine.start_container("ee").await.unwrap();
    assert_eq!(
        engine
            .exec_create("ee", exec_spec(&[]), attach)
            .unwrap_err(),
        EngineError::BadRequest("No exec command specified".into())
    );
    let exec_id = engine
        .exec_create("ee", exec_spec(&["ls", "/"]), attach)
        .unwrap();
    let mut io = engine
        .exec_start(&exec_id, false)
        .await
        .unwrap()
        .expect("attached");
    let process = fake.exec(&exec_id);
    assert!(process.started());
    let mut far = process.attached.lock().unwrap().remove(0);
    far.write_all(b"bin\n").await.unwrap();
    let mut buf = [0u8; 4];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"bin\n");
    let exec = engine.exec_get(&exec_id).unwrap();
    assert!(exec.running);
    assert_eq!(exec.pid, process.pid);
    assert!(matches!(
        engine.exec_start(&exec_id, true).await,
        Err(EngineError::Conflict(_))
    ));
    process.exit(0);
    eventually("the exec's exit is recorded", || {
        engine.exec_get(&exec_id).unwrap().exit_code == Some(0)
    })
    .await;
    assert!(!engine.exec_get(&exec_id).unwrap().running);

    let missing = engine
        .exec_create("ee", exec_spec(&["missing"]), attach)
        .unwrap();
    assert!(matches!(
        engine.exec_start(&missing, true).await,
        Err(EngineError::BadRequest(m)) if m.contains("executable file not found")
    ));
    assert_eq!(
        engine.exec_get("nope").err(),
        Some(EngineError::NotFound("No such exec instance: nope".into()))
    );
    assert_eq!(
        actions(&mut events, &id),
        [
            "create",
            "start",
            "exec_create",
            "exec_start",
            "exec_die:0",
            "exec_create"
        ]
    );
}

#[tokio::test]
async fn attach_before_start_connects_at_start() {
    let (_root, fake, engine) = setup();
    let id = create(&engine, "att", body(HostConfig::default()))
        .await
        .unwrap();
    let pending = engine
        .attach_container(
            "att",
            AttachOptions {
                stdout: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    engine.start_container("att").await.unwrap();
    let mut io = pending.await.unwrap();
    let mut far = fake.init(&id).attached.lock().unwrap().remove(0);
    far.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hi");
    engine.resize_container("att", 40, 120).await.unwrap();
    assert_eq!(*fake.init(&id).size.lock().unwrap(), Some((40, 120)));
}

/// A daemon that stops (its runtime goes, tasks and all) and starts again over the same
/// data root finds its containers as the backend left them.
#[test]
fn a_restarted_daemon_reconnects() {
    let root = data_root();
    let fake = FakeBackend::new(&root.path().join("fake"));
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = rt();
    let (alive, exited, lost, stopped) = first.block_on(async {
        let engine = engine(root.path(), &fake);
        let mut ids = Vec::new();
        for name in ["alive", "exited", "lost", "stopped"] {
            let id = create(&engine, name, body(HostConfig::default()))
                .await
                .unwrap();
            engine.start_container(&id).await.unwrap();
            ids.push(id);
        }
        engine.stop_container("stopped", Some(1)).await.unwrap();
        (
            ids[0].clone(),
            ids[1].clone(),
            ids[2].clone(),
            ids[3].clone(),
        )
    });
    drop(first);
    // While no daemon runs: one container ends, one's monitor vanishes.
    fake.init(&exited).exit(5);
    fake.lose(&lost);

    let second = rt();
    second.block_on(async {
        let engine = engine(root.path(), &fake);
        let mut events = engine.events.subscribe();
        engine.recover().await;
        let rec = engine.container(&alive).unwrap();
        assert!(rec.is_running(), "{:?}", rec.state);
        assert_eq!(rec.state.pid, fake.init(&alive).pid);

        let rec = engine.container(&exited).unwrap();
        assert_eq!(rec.state.status, Status::Exited);
        assert_eq!(rec.state.exit_code, 5);

        let rec = engine.container(&lost).unwrap();
        assert_eq!(rec.state.status, Status::Exited);
        assert_eq!(rec.state.exit_code, 255);
        assert_eq!(
            rec.state.error,
            "the container's monitor ended without recording an exit"
        );
        let rec = engine.container(&stopped).unwrap();
        assert_eq!(rec.state.exit_code, 143);

        // The reattached container is watched by the new engine.
        fake.init(&alive).exit(7);
        assert_eq!(wait_exit(&engine, &alive).await, 7);
        eventually("the exit is recorded", || {
            engine.container(&alive).unwrap().state.exit_code == 7
        })
        .await;
        let seen = drain(&mut events);
        assert_eq!(of(&seen, &exited), ["die:5"]);
        assert_eq!(of(&seen, &lost), ["die:255"]);
        assert_eq!(of(&seen, &alive), ["die:7"]);
        // And the old containers start again.
        engine.start_container(&exited).await.unwrap();
        assert!(engine.container(&exited).unwrap().is_running());
    });
}

/// A daemon that starts without the backend of a running container leaves it as
/// recorded, and says why it cannot act on it.
#[test]
fn a_container_whose_backend_is_gone_is_left_alone() {
    let root = data_root();
    let fake = FakeBackend::new(&root.path().join("fake"));
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = rt();
    let id = first.block_on(async {
        let engine = engine(root.path(), &fake);
        let id = create(&engine, "kept", body(HostConfig::default()))
            .await
            .unwrap();
        engine.start_container(&id).await.unwrap();
        id
    });
    drop(first);
    rt().block_on(async {
        let engine = engine_with(
            root.path(),
            Backends::new().without(Isolation::Native, "switched off"),
        );
        engine.recover().await;
        let rec = engine.container(&id).unwrap();
        assert!(rec.is_running(), "{:?}", rec.state);
        assert_eq!(
            engine.kill_container("kept", "KILL").await.unwrap_err(),
            EngineError::BadRequest(
                "isolation native is not available on this daemon: switched off".into()
            )
        );
    });
    assert!(fake.init(&id).exited().is_none());
}
