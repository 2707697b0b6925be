//! Health checks run as execs on schedule: `healthy` after a passing run, `unhealthy`
//! after `Retries` failing ones, the last five runs kept, a `health_status` event per
//! change, and the check ends with the container.

use bollard_stubs::models::HealthConfig;

use super::*;

fn checked(cmd: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        healthcheck: Some(HealthConfig {
            test: Some(vec!["CMD".into(), cmd.into()]),
            interval: Some(20_000_000),
            timeout: Some(1_000_000_000),
            retries: Some(2),
            ..Default::default()
        }),
        ..body(HostConfig::default())
    }
}

fn health(engine: &Engine, id: &str) -> (String, u32, usize) {
    let h = engine.container(id).unwrap().health.unwrap_or_default();
    (h.status, h.failing_streak, h.log.len())
}

#[tokio::test]
async fn a_passing_check_makes_it_healthy_and_a_failing_one_unhealthy() {
    let (_root, fake, engine) = setup();
    let mut events = engine.events.subscribe();
    let good = create(&engine, "good", checked("healthy-check"))
        .await
        .unwrap();
    let bad = create(&engine, "bad", checked("sick-check")).await.unwrap();
    engine.start_container(&good).await.unwrap();
    engine.start_container(&bad).await.unwrap();
    assert_eq!(health(&engine, &good).0, "starting");

    eventually("good is healthy", || health(&engine, &good).0 == "healthy").await;
    eventually("bad is unhealthy", || {
        health(&engine, &bad).0 == "unhealthy"
    })
    .await;
    eventually("five runs logged", || health(&engine, &bad).2 == 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, streak, logged) = health(&engine, &bad);
    assert!(streak >= 6, "streak {streak}");
    assert_eq!(logged, 5, "only the last five runs are kept");
    let rec = engine.container(&bad).unwrap();
    assert_eq!(rec.health.unwrap().log[0].exit_code, 1);

    let seen = drain(&mut events);
    let health_events = |id: &str| -> Vec<String> {
        of(&seen, id)
            .into_iter()
            .filter(|a| a.starts_with("health_status"))
            .collect()
    };
    assert_eq!(health_events(&good), ["health_status: healthy"]);
    assert_eq!(health_events(&bad), ["health_status: unhealthy"]);

    // The check stops with the container.
    fake.init(&good).exit(0);
    wait_exit(&engine, &good).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let runs = engine.container(&good).unwrap().health.unwrap().log.len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        engine.container(&good).unwrap().health.unwrap().log.len(),
        runs
    );
}

#[tokio::test]
async fn bad_healthchecks_are_refused_and_none_disables() {
    let (_root, _fake, engine) = setup();
    let mut b = checked("healthy-check");
    b.healthcheck.as_mut().unwrap().interval = Some(5);
    assert!(matches!(
        create(&engine, "bad", b).await,
        Err(EngineError::BadRequest(_))
    ));
    let none = ContainerCreateBody {
        healthcheck: Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        }),
        ..body(HostConfig::default())
    };
    let id = create(&engine, "none", none).await.unwrap();
    engine.start_container(&id).await.unwrap();
    assert!(engine.container(&id).unwrap().health.is_none());
}
