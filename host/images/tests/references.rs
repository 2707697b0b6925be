//! `normalize_reference`: docker's familiar form, and clear errors.

use vmrun_images::{normalize_reference, ImageError, Reference};

#[test]
fn normalizes_like_docker() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let cases = [
        ("busybox", "busybox:latest".to_owned()),
        ("busybox:latest", "busybox:latest".to_owned()),
        ("busybox:1.36.1-musl", "busybox:1.36.1-musl".to_owned()),
        ("library/busybox", "busybox:latest".to_owned()),
        ("docker.io/busybox", "busybox:latest".to_owned()),
        ("docker.io/library/busybox", "busybox:latest".to_owned()),
        (
            "docker.io/library/busybox:glibc",
            "busybox:glibc".to_owned(),
        ),
        (
            "index.docker.io/library/busybox",
            "busybox:latest".to_owned(),
        ),
        ("user/app", "user/app:latest".to_owned()),
        ("docker.io/user/app:v2", "user/app:v2".to_owned()),
        ("localhost/x", "localhost/x:latest".to_owned()),
        ("localhost:5000/x", "localhost:5000/x:latest".to_owned()),
        (
            "localhost:5000/a/b/c:t",
            "localhost:5000/a/b/c:t".to_owned(),
        ),
        ("127.0.0.1:5000/x:y", "127.0.0.1:5000/x:y".to_owned()),
        ("ghcr.io/org/img", "ghcr.io/org/img:latest".to_owned()),
        (
            "Registry.Example.com/img",
            "Registry.Example.com/img:latest".to_owned(),
        ),
        ("user/a.b_c__d-e--f", "user/a.b_c__d-e--f:latest".to_owned()),
        (&*format!("busybox@{digest}"), format!("busybox@{digest}")),
        (
            &*format!("docker.io/library/busybox:1@{digest}"),
            format!("busybox:1@{digest}"),
        ),
        (
            &*format!("localhost:5000/x@{digest}"),
            format!("localhost:5000/x@{digest}"),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(normalize_reference(input).unwrap(), expected, "{input}");
    }
}

#[test]
fn invalid_references_give_clear_errors() {
    let bad = [
        ("", "empty"),
        ("Busybox", "must be lowercase"),
        ("user/Busybox", "must be lowercase"),
        ("busybox:", "invalid tag"),
        ("busybox:-x", "invalid tag"),
        ("busy box", "invalid repository path"),
        ("busybox!", "invalid repository path"),
        ("a//b", "invalid repository path"),
        ("a/-b", "invalid repository path"),
        ("a..b", "invalid repository path"),
        ("busybox@sha256:abc", "invalid digest"),
        ("busybox@", "invalid digest"),
        ("localhost:port/x", "invalid port"),
        ("a.b_c/g", "invalid domain"),
        (&*"a".repeat(64), "64-byte hexadecimal"),
        (&*format!("x:{}", "t".repeat(129)), "invalid tag"),
        (&*format!("{}/x", "a".repeat(256)), "255 characters"),
    ];
    for (input, reason) in bad {
        match normalize_reference(input) {
            Err(ImageError::InvalidReference {
                reference,
                reason: why,
            }) => {
                assert_eq!(reference, input);
                assert!(
                    why.contains(reason),
                    "{input:?}: {why:?} should mention {reason:?}"
                );
            }
            other => panic!("{input:?} should be invalid, got {other:?}"),
        }
    }
}

#[test]
fn reference_parts() {
    let r = Reference::parse("localhost:5000/team/app:v1").unwrap();
    assert_eq!(r.domain(), "localhost:5000");
    assert_eq!(r.path(), "team/app");
    assert_eq!(r.repository(), "localhost:5000/team/app");
    assert_eq!(r.tag(), Some("v1"));
    assert_eq!(r.digest(), None);
    let r = Reference::parse("busybox").unwrap();
    assert_eq!(r.full_repository(), "docker.io/library/busybox");
    assert_eq!(r.tag(), None);
    assert_eq!(r.with_default_tag().to_string(), "busybox:latest");
}
