//! Create, start, stop, kill, restart, remove, and failures to start.

use super::*;
use vmrun_daemon::backend::{Protocol, PublishedPort};

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

/// Ports a backend forwards by itself (automatic forwarding in VMs, `-P`) join the
/// published ones in the record while that run lasts, and go with it.
#[tokio::test]
async fn automatically_forwarded_ports_are_recorded_for_the_run() {
    let (_root, fake, engine) = setup();
    let hc = HostConfig {
        publish_all_ports: Some(true),
        ..Default::default()
    };
    let id = create(&engine, "auto", body(hc)).await.unwrap();
    assert!(engine.start_container(&id).await.unwrap());
    let port = |p: u16, proto: Protocol| PublishedPort {
        host_ip: "127.0.0.1".into(),
        host_port: p,
        container_port: p,
        proto,
    };
    let listed = |engine: &Engine| -> Vec<(u16, String)> {
        let rec = engine.container(&id).unwrap();
        rec.ports
            .iter()
            .map(|p| (p.container_port, p.proto.clone()))
            .collect()
    };
    assert!(fake.forward_automatically(
        &id,
        vec![port(8080, Protocol::Tcp), port(53, Protocol::Udp)]
    ));
    eventually("the forwarded ports are recorded", || {
        listed(&engine) == [(8080, "tcp".to_string()), (53, "udp".to_string())]
    })
    .await;
    assert!(fake.forward_automatically(&id, vec![port(53, Protocol::Udp)]));
    eventually("a closed port goes", || {
        listed(&engine) == [(53, "udp".to_string())]
    })
    .await;

    fake.init(&id).exit(0);
    eventually("the exit is recorded", || {
        engine.container(&id).unwrap().state.status == Status::Exited
    })
    .await;
    // A late report of the ended run changes nothing.
    fake.forward_automatically(&id, vec![port(9090, Protocol::Tcp)]);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(listed(&engine).is_empty());
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

#[tokio::test]
async fn a_lost_process_is_recorded_as_exited_with_the_reason() {
    let (_root, fake, engine) = setup();
    let id = create(&engine, "lost", body(HostConfig::default()))
        .await
        .unwrap();
    engine.start_container("lost").await.unwrap();
    fake.init(&id)
        .lose("waiting: the container's VM stopped: the monitor was killed");
    eventually("the loss is recorded", || {
        engine.container(&id).unwrap().state.status == Status::Exited
    })
    .await;
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.state.exit_code, 255);
    assert!(
        rec.state.error.contains("VM stopped"),
        "{:?}",
        rec.state.error
    );
    // The next start clears it.
    engine.start_container("lost").await.unwrap();
    assert_eq!(engine.container(&id).unwrap().state.error, "");
}
