//! `docker logs --tail N` of a long log (read from the log's end), alone and followed, and
//! followers woken by the log's changes.

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

#[test]
fn followers_get_new_lines_as_they_are_written() {
    use std::io::{Read, Write};
    if !require_root() || !require_tool("docker") {
        return;
    }
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "slow",
        "busybox",
        "sh",
        "-c",
        "echo zero; sleep 2; echo one; sleep 1; echo two; sleep 600",
    ])
    .ok();
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = std::time::Instant::now();
    s.write_all(b"GET /containers/slow/logs?stdout=1&follow=1 HTTP/1.1\r\nHost: d\r\n\r\n")
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("two") {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the stream ended: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    // Written about 3 s after the start; a follower woken only by its 5 s safety timer
    // would be later.
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "{:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("zero") && text.contains("one"), "{text}");
    d.docker(&["rm", "-f", "slow"]).ok();
}

#[test]
fn json_file_logs_rotate_with_log_opts() {
    if !require_root() || !require_tool("docker") {
        return;
    }
    let d = Daemon::start();
    vmrun_e2e::log_rotation::rotation_scenario(&d, &[], Duration::from_secs(20));
    // Bad options are refused at create.
    let bad = d.docker(&["create", "--log-opt", "max-size=lots", "busybox"]);
    assert!(bad.stderr.contains("invalid value for max-size"), "{bad}");
}
