//! Exec and attach.

use super::*;

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
