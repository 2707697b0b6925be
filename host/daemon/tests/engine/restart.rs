//! A daemon that stops and starts again over the same data root.

use super::*;

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
