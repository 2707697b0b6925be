//! Restart policies: on-failure with a limit, always against exits, kill and stop, a stop during
//! the back-off, and what a daemon start brings back.

use bollard_stubs::models::{RestartPolicy, RestartPolicyNameEnum};

use super::*;

fn with_policy(name: RestartPolicyNameEnum, max: i64) -> ContainerCreateBody {
    body(HostConfig {
        restart_policy: Some(RestartPolicy {
            name: Some(name),
            maximum_retry_count: Some(max),
        }),
        ..Default::default()
    })
}

/// Waits until container `id` runs a process other than `old`, started.
async fn restarted(engine: &Engine, fake: &FakeBackend, id: &str, old: i32) {
    eventually("the container runs again", || {
        engine.container(id).unwrap().is_running() && fake.init(id).pid != old
    })
    .await;
}

#[tokio::test]
async fn on_failure_restarts_up_to_its_limit() {
    let (_root, fake, engine) = setup();
    let id = create(
        &engine,
        "flaky",
        with_policy(RestartPolicyNameEnum::ON_FAILURE, 2),
    )
    .await
    .unwrap();
    engine.start_container(&id).await.unwrap();
    for count in 1..=2 {
        let old = fake.init(&id).pid;
        fake.init(&id).exit(3);
        restarted(&engine, &fake, &id, old).await;
        assert_eq!(engine.container(&id).unwrap().restart_count, count);
    }
    fake.init(&id).exit(3);
    wait_exit(&engine, &id).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.state.status, Status::Exited, "the limit was reached");
    assert_eq!(rec.restart_count, 2);

    // A clean exit is not a failure.
    let ok = create(
        &engine,
        "ok",
        with_policy(RestartPolicyNameEnum::ON_FAILURE, 0),
    )
    .await
    .unwrap();
    engine.start_container(&ok).await.unwrap();
    fake.init(&ok).exit(0);
    wait_exit(&engine, &ok).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!engine.container(&ok).unwrap().is_running());
}

#[tokio::test]
async fn always_restarts_exits_but_not_a_kill_or_a_stop() {
    let (_root, fake, engine) = setup();
    let id = create(
        &engine,
        "svc",
        with_policy(RestartPolicyNameEnum::ALWAYS, 0),
    )
    .await
    .unwrap();
    engine.start_container(&id).await.unwrap();
    let old = fake.init(&id).pid;
    fake.init(&id).exit(137);
    restarted(&engine, &fake, &id, old).await;
    // A clean exit restarts too.
    let old = fake.init(&id).pid;
    fake.init(&id).exit(0);
    restarted(&engine, &fake, &id, old).await;
    assert_eq!(engine.container(&id).unwrap().restart_count, 2);

    // `docker kill` makes the next exit final, as dockerd's ExitOnNext does...
    engine.kill_container(&id, "KILL").await.unwrap();
    wait_exit(&engine, &id).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.state.status, Status::Exited, "a kill is not restarted");
    assert!(!rec.state.stopped_by_user);
    // ...until it is started again.
    engine.start_container(&id).await.unwrap();
    let old = fake.init(&id).pid;
    fake.init(&id).exit(1);
    restarted(&engine, &fake, &id, old).await;

    assert!(engine.stop_container(&id, Some(1)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.state.status, Status::Exited, "stop is final");
    assert!(rec.state.stopped_by_user);
}

#[tokio::test]
async fn a_stop_during_the_back_off_cancels_the_restart() {
    let (_root, fake, engine) = setup();
    let id = create(
        &engine,
        "svc",
        with_policy(RestartPolicyNameEnum::ALWAYS, 0),
    )
    .await
    .unwrap();
    engine.start_container(&id).await.unwrap();
    // Quick failures double the back-off: 100, 200, 400 ms...
    for _ in 0..3 {
        let old = fake.init(&id).pid;
        fake.init(&id).exit(1);
        restarted(&engine, &fake, &id, old).await;
    }
    fake.init(&id).exit(1);
    wait_exit(&engine, &id).await;
    eventually("the restart is pending", || engine.restarting(&id)).await;
    assert!(!engine.stop_container(&id, Some(1)).await.unwrap());
    assert!(!engine.restarting(&id));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(engine.container(&id).unwrap().state.status, Status::Exited);
}

/// A daemon start brings back `always` containers even after a stop, `unless-stopped`
/// ones only if they were not stopped, and those that died while it was away.
#[test]
fn a_daemon_start_applies_the_policies() {
    let root = data_root();
    let fake = FakeBackend::new(&root.path().join("fake"));
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let ids = rt().block_on(async {
        let engine = engine(root.path(), &fake);
        let mut ids = Vec::new();
        for (name, policy) in [
            ("always-stopped", RestartPolicyNameEnum::ALWAYS),
            ("unless-stopped", RestartPolicyNameEnum::UNLESS_STOPPED),
            ("unless-died", RestartPolicyNameEnum::UNLESS_STOPPED),
            ("no-died", RestartPolicyNameEnum::NO),
        ] {
            let id = create(&engine, name, with_policy(policy, 0)).await.unwrap();
            engine.start_container(&id).await.unwrap();
            ids.push(id);
        }
        engine.stop_container(&ids[0], Some(1)).await.unwrap();
        engine.stop_container(&ids[1], Some(1)).await.unwrap();
        ids
    });
    // While no daemon runs, two die by themselves.
    fake.init(&ids[2]).exit(1);
    fake.init(&ids[3]).exit(1);
    rt().block_on(async {
        let engine = engine(root.path(), &fake);
        engine.recover().await;
        eventually("always-stopped and unless-died run again", || {
            engine.container(&ids[0]).unwrap().is_running()
                && engine.container(&ids[2]).unwrap().is_running()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!engine.container(&ids[1]).unwrap().is_running());
        assert!(!engine.container(&ids[3]).unwrap().is_running());
    });
}
