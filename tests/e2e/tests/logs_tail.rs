//! `docker logs --tail N` of a long log (read from the log's end), alone and followed.

use std::time::Duration;

use vmrun_e2e::{require_root, require_tool, wait_for, Daemon};

#[test]
fn tail_of_a_long_log_alone_and_followed() {
    if !require_root() || !require_tool("docker") {
        return;
    }
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "long",
        "busybox",
        "sh",
        "-c",
        "seq 1 30000; echo err >&2; sleep 3; echo after; sleep 1",
    ])
    .ok();
    wait_for(Duration::from_secs(20), "the whole log", || {
        d.docker(&["logs", "long"])
            .stderr
            .contains("err")
            .then_some(())
    });
    let last = d.docker(&["logs", "--tail", "3", "long"]);
    last.ok();
    assert_eq!(last.stdout, "29999\n30000\n", "{last}");
    assert_eq!(last.stderr, "err\n", "{last}");
    let only_out = d.api("GET", "/containers/long/logs?stdout=1&tail=2", None);
    assert!(only_out.text().contains("29999\n") && only_out.text().contains("30000\n"));
    assert!(!only_out.text().contains("29998"), "{}", only_out.text());
    // Followed: the last lines, then what comes after, until the container exits.
    let follow = d.api_send(
        "GET",
        "/containers/long/logs?stdout=1&tail=1&follow=1",
        None,
    );
    let res = follow.finish();
    let text = res.text();
    assert!(
        text.contains("30000\n") && text.contains("after\n"),
        "{text}"
    );
    assert!(!text.contains("29999"), "{text}");
    d.docker(&["rm", "long"]).ok();
}
