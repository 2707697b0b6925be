//! What create and rename accept and refuse: names, ports, networks, isolation.

use super::*;

#[tokio::test]
async fn names_conflict_and_rename() {
    // Names with a letter past `f`: a lookup by a hex name could match an id's prefix.
    let (_root, _fake, engine) = setup();
    let mut events = engine.events.subscribe();
    let a = create(&engine, "an", body(HostConfig::default()))
        .await
        .unwrap();
    let err = create(&engine, "an", body(HostConfig::default()))
        .await
        .unwrap_err();
    assert_eq!(err, EngineError::Conflict(format!("Conflict. The container name \"/an\" is already in use by container \"{a}\". You have to remove (or rename) that container to be able to reuse that name.")));
    assert_eq!(
        create(&engine, "-bad", body(HostConfig::default()))
            .await
            .unwrap_err(),
        EngineError::BadRequest(
            "Invalid container name (-bad), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed".into()
        )
    );
    engine.rename_container("an", "/bn").unwrap();
    assert_eq!(engine.container("bn").unwrap().id, a);
    assert!(engine.container("an").is_err());
    let c = create(&engine, "an", body(HostConfig::default()))
        .await
        .unwrap();
    assert!(matches!(
        engine.rename_container("bn", "an").unwrap_err(),
        EngineError::Conflict(_)
    ));
    assert!(matches!(
        engine.rename_container("bn", "x y").unwrap_err(),
        EngineError::BadRequest(_)
    ));
    assert_eq!(
        engine.rename_container("nope", "z").unwrap_err(),
        EngineError::NotFound("No such container: nope".into())
    );
    // An id prefix finds the container too.
    assert_eq!(engine.container(&c[..10]).unwrap().name, "an");
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
