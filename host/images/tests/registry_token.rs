//! Bearer-token auth against a real registry (Debian's `docker-registry`) configured
//! with `auth.token`, and a token issuer from the test harness (`common/token.rs`:
//! basic-auth check, RS256 JWTs with an `x5c` header, signed by `openssl`).

mod common;

use common::registry::{have_tools, Registry};
use common::token::TokenIssuer;
use vmrun_images::registry::{check_login, Credentials};
use vmrun_images::{ImageError, ImageStore, PullOptions, PushOptions, PushStatus};

const USER: &str = "tokenuser";
const PASSWORD: &str = "t0ken-pass";

fn creds(user: &str, password: &str) -> Credentials {
    Credentials {
        username: user.to_owned(),
        password: password.to_owned(),
    }
}

/// A token-auth registry holding `test/busybox:1`, its issuer and a temp dir.
fn token_registry(with_image: bool) -> Option<(Registry, TokenIssuer, tempfile::TempDir)> {
    if with_image && (!common::require_root() || !have_tools(&["skopeo"])) {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let issuer = TokenIssuer::start(&tmp.path().join("issuer"), USER, PASSWORD)?;
    let registry = Registry::start(issuer.auth())?;
    if with_image {
        let archive = common::make_busybox(tmp.path(), "oci")?;
        registry.skopeo_push(
            &archive,
            "test/busybox:1",
            Some(&format!("{USER}:{PASSWORD}")),
        );
    }
    issuer.clear();
    Some((registry, issuer, tmp))
}

#[test]
fn anonymous_pull_is_refused() {
    let Some((registry, issuer, tmp)) = token_registry(true) else {
        return;
    };
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let reference = format!("{}/test/busybox:1", registry.addr);
    let err = store
        .pull(&reference, &PullOptions::default(), &|_| {})
        .unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("no credentials"), "{err}");
    // The issuer was asked (anonymously) and gave a token the registry refused.
    let requests = issuer.requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.user.is_none() && r.status == 200),
        "{requests:?}"
    );
    assert!(store.resolve(&reference).is_err());
}

#[test]
fn pull_with_credentials_gets_a_pull_scoped_token() {
    let Some((registry, issuer, tmp)) = token_registry(true) else {
        return;
    };
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let reference = format!("{}/test/busybox:1", registry.addr);
    let opts = PullOptions {
        credentials: Some(creds(USER, PASSWORD)),
        ..Default::default()
    };
    let pulled = store.pull(&reference, &opts, &|_| {}).unwrap();
    assert!(pulled.image.layer_dirs[0].join("bin/busybox").is_file());
    let requests = issuer.requests();
    // One token for the whole pull: the manifest's challenge; later requests reuse it.
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].user.as_deref(), Some(USER));
    assert_eq!(
        requests[0].service.as_deref(),
        Some(issuer.service.as_str())
    );
    assert_eq!(
        requests[0].scopes,
        vec!["repository:test/busybox:pull".to_owned()]
    );
}

#[test]
fn wrong_password_is_unauthorized() {
    let Some((registry, issuer, tmp)) = token_registry(true) else {
        return;
    };
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let reference = format!("{}/test/busybox:1", registry.addr);
    let opts = PullOptions {
        credentials: Some(creds(USER, "wrong")),
        ..Default::default()
    };
    let err = store.pull(&reference, &opts, &|_| {}).unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("invalid username or password"),
        "{err}"
    );
    assert_eq!(issuer.requests().last().map(|r| r.status), Some(401));
}

#[test]
fn check_login_uses_the_token_flow() {
    let Some((registry, issuer, _tmp)) = token_registry(false) else {
        return;
    };
    check_login(&registry.addr, &creds(USER, PASSWORD), &Default::default()).unwrap();
    let requests = issuer.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].user.as_deref(), Some(USER));
    let err = check_login(&registry.addr, &creds(USER, "nope"), &Default::default()).unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
}

#[test]
fn the_registry_asks_for_a_bearer_token() {
    // Guards the harness: a token registry without a token refuses `GET /v2/`.
    let Some((registry, _issuer, _tmp)) = token_registry(false) else {
        return;
    };
    let (status, head, _) = common::registry::http(&registry.addr, "GET", "/v2/", &[], b"");
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
}

#[test]
fn push_asks_for_pull_push_scope_and_pull_scope_on_the_mount_source() {
    let Some((registry, issuer, tmp)) = token_registry(true) else {
        return;
    };
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let source = format!("{}/test/busybox:1", registry.addr);
    let opts = PullOptions {
        credentials: Some(creds(USER, PASSWORD)),
        ..Default::default()
    };
    store.pull(&source, &opts, &|_| {}).unwrap();
    let target = format!("{}/test/copy:1", registry.addr);
    store.tag(&source, &target).unwrap();

    let anonymous = store.push(&target, &PushOptions::default(), &|_| {});
    assert!(
        matches!(anonymous, Err(ImageError::Unauthorized { .. })),
        "{anonymous:?}"
    );

    issuer.clear();
    let push_opts = PushOptions {
        credentials: Some(creds(USER, PASSWORD)),
        ..Default::default()
    };
    let statuses = std::cell::RefCell::new(Vec::new());
    let pushed = store
        .push(&target, &push_opts, &|p| {
            statuses.borrow_mut().push(p.status)
        })
        .unwrap();
    let requests = issuer.requests();
    // One token: push on the target, pull on the repository the layers are mounted from.
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].user.as_deref(), Some(USER));
    assert_eq!(
        requests[0].scopes,
        vec![
            "repository:test/copy:pull,push".to_owned(),
            "repository:test/busybox:pull".to_owned()
        ]
    );
    assert!(
        statuses
            .borrow()
            .contains(&PushStatus::MountedFrom("test/busybox".into())),
        "{:?}",
        statuses.borrow()
    );
    // What went up pulls back into a fresh store with the same manifest digest.
    let fresh = ImageStore::open(&tmp.path().join("fresh")).unwrap();
    let pulled = fresh.pull(&target, &opts, &|_| {}).unwrap();
    assert_eq!(pulled.digest, pushed.digest);
}
