//! `registry::check_login` against a real registry (Debian's `docker-registry`)
//! on 127.0.0.1 with htpasswd basic auth.

mod common;

use common::registry::{Auth, Registry};
use vmrun_images::registry::{check_login, Credentials};
use vmrun_images::ImageError;

fn creds(user: &str, password: &str) -> Credentials {
    Credentials {
        username: user.to_owned(),
        password: password.to_owned(),
    }
}

fn basic_registry() -> Option<Registry> {
    Registry::start(Auth::Basic {
        user: "alice".into(),
        password: "s3cret".into(),
    })
}

#[test]
fn right_credentials_are_accepted() {
    let Some(registry) = basic_registry() else {
        return;
    };
    check_login(
        &registry.addr,
        &creds("alice", "s3cret"),
        &Default::default(),
    )
    .unwrap();
    // The forms `docker login` users type work too.
    check_login(
        &format!("http://{}/", registry.addr),
        &creds("alice", "s3cret"),
        &Default::default(),
    )
    .unwrap();
}

#[test]
fn wrong_password_is_unauthorized() {
    let Some(registry) = basic_registry() else {
        return;
    };
    let err = check_login(
        &registry.addr,
        &creds("alice", "wrong"),
        &Default::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    let err =
        check_login(&registry.addr, &creds("bob", "s3cret"), &Default::default()).unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
}

#[test]
fn anonymous_registry_accepts_any_login() {
    let Some(registry) = Registry::start(Auth::Anonymous) else {
        return;
    };
    check_login(
        &registry.addr,
        &creds("anyone", "anything"),
        &Default::default(),
    )
    .unwrap();
}
