//! `docker search REGISTRY/TERM` against a real registry's catalog, its filters and
//! limit, and the clear error for a term without a registry (Docker Hub has no catalog).

use std::time::Duration;

use vmrun_e2e::{require_root, require_tool, run_with_timeout, Daemon};
use vmrun_test_registry::registry::{Auth, Registry};

#[test]
fn search_lists_a_registrys_matching_repositories() {
    if !require_root() || !require_tool("docker") {
        return;
    }
    let d = Daemon::start();
    let Some(registry) = Registry::start(Auth::Anonymous) else {
        return;
    };
    for repo in ["e2e/busybox", "e2e/busybox-two", "other/thing"] {
        let image = format!("{}/{repo}:1", registry.addr);
        d.docker(&["tag", "busybox", &image]).ok();
        run_with_timeout(
            d.docker_cmd(&["push", &image]),
            None,
            Duration::from_secs(120),
        )
        .ok();
    }
    let term = format!("{}/busy", registry.addr);
    let found = d.docker(&[
        "search",
        "--format",
        "{{.Name}} {{.StarCount}} {{.IsOfficial}}",
        &term,
    ]);
    found.ok();
    assert_eq!(
        found.stdout,
        format!(
            // The CLI shows a false IsOfficial as nothing.
            "{0}/e2e/busybox 0 \n{0}/e2e/busybox-two 0 \n",
            registry.addr
        ),
        "{found}"
    );
    let limited = d.docker(&["search", "--limit", "1", "--format", "{{.Name}}", &term]);
    assert_eq!(limited.stdout.lines().count(), 1, "{limited}");
    let starred = d.docker(&[
        "search",
        "--filter",
        "stars=3",
        "--format",
        "{{.Name}}",
        &term,
    ]);
    starred.ok();
    assert_eq!(starred.stdout, "", "{starred}");
    let everything = d.api(
        "GET",
        &format!("/images/search?term={}/", registry.addr),
        None,
    );
    assert_eq!(
        everything.json().as_array().map(Vec::len),
        Some(3),
        "{}",
        everything.text()
    );

    // `vmrun search` prints what `docker search` prints.
    for args in [
        vec!["search", term.as_str()],
        vec!["search", "--no-trunc", "--limit", "1", term.as_str()],
        vec!["search", "--filter", "stars=3", term.as_str()],
        vec![
            "search",
            "--format",
            "{{.Name}}: {{.StarCount}}",
            term.as_str(),
        ],
    ] {
        let docker = d.docker(&args);
        let vmrun = d.vmrun(&args);
        assert_eq!(
            (docker.code, &docker.stdout),
            (vmrun.code, &vmrun.stdout),
            "{args:?}\n{docker}\n{vmrun}"
        );
    }
    let hub = d.docker(&["search", "busybox"]);
    assert!(!hub.success(), "{hub}");
    assert!(
        hub.stderr.contains("searching Docker Hub is not supported"),
        "{hub}"
    );
    let bad = d.api("GET", "/images/search?term=x&limit=500", None);
    assert_eq!(bad.status, 400, "{}", bad.text());
    let filter = d.api(
        "GET",
        &format!("/images/search?term={term}&filters=%7B%22nope%22%3A%5B%221%22%5D%7D"),
        None,
    );
    assert_eq!(filter.status, 400, "{}", filter.text());
}
