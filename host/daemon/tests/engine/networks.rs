//! `network connect`/`disconnect` in the record (the predefined networks only: these
//! engines have no network manager): docker's refusals, a container disconnected from
//! every network starts with a loopback only, and connecting gives it its network back.

use super::*;

#[tokio::test]
async fn connect_and_disconnect_keep_the_record_right() {
    let (_root, fake, engine) = setup();
    let id = create(&engine, "cnt", body(HostConfig::default()))
        .await
        .unwrap();
    assert!(matches!(
        engine.connect_container("bridge", &id, Vec::new()).await,
        Err(EngineError::Forbidden(_))
    ));
    assert!(matches!(
        engine.disconnect_container("nosuch", &id).await,
        Err(EngineError::NotFound(_))
    ));
    assert!(matches!(
        engine.connect_container("nosuch", &id, Vec::new()).await,
        Err(EngineError::NotFound(_))
    ));

    engine.disconnect_container("bridge", &id).await.unwrap();
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.network_mode, "");
    assert!(vmrun_daemon::engine::networks::networks_of(&rec).is_empty());
    assert!(matches!(
        engine.disconnect_container("bridge", &id).await,
        Err(EngineError::BadRequest(_))
    ));
    // No network at all: a loopback only.
    engine.start_container(&id).await.unwrap();
    assert_eq!(fake.spec(&id).network.mode, "none");
    engine.stop_container(&id, Some(1)).await.unwrap();

    engine
        .connect_container("bridge", &id, vec!["web".into()])
        .await
        .unwrap();
    let rec = engine.container(&id).unwrap();
    assert_eq!(rec.network_mode, "bridge");
    assert_eq!(rec.aliases, ["web"]);
    engine.start_container(&id).await.unwrap();
    assert_eq!(fake.spec(&id).network.mode, "bridge");

    // A running container's connection goes through its backend, which may refuse.
    engine.stop_container(&id, Some(1)).await.unwrap();
    engine.disconnect_container("bridge", &id).await.unwrap();
    engine.start_container(&id).await.unwrap();
    assert!(matches!(
        engine.connect_container("bridge", &id, Vec::new()).await,
        Err(EngineError::BadRequest(_))
    ));
    assert_eq!(engine.container(&id).unwrap().network_mode, "");

    // The host network can neither gain nor lose networks.
    let host = create(
        &engine,
        "hostnet",
        body(HostConfig {
            network_mode: Some("host".into()),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert!(matches!(
        engine.connect_container("bridge", &host, Vec::new()).await,
        Err(EngineError::BadRequest(_))
    ));
}
