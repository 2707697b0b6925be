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
    d.docker(&[
        "run",
        "-d",
        "--name",
        "rot",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "seq 1 500; echo done-1; sleep 3; seq 501 520; sleep 600",
    ])
    .ok();
    wait_for(Duration::from_secs(20), "the first batch", || {
        d.docker(&["logs", "rot"])
            .stdout
            .contains("done-1")
            .then_some(())
    });
    let log = std::path::PathBuf::from(d.inspect("rot")["LogPath"].as_str().unwrap_or_default());
    let rotated = |n: u32| std::path::PathBuf::from(format!("{}.{n}", log.display()));
    for p in [log.clone(), rotated(1), rotated(2)] {
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(u64::MAX);
        assert!(len <= 1024, "{}: {len}", p.display());
    }
    assert!(!rotated(3).exists(), "more files than max-file");
    // What is kept reads in order across the files, up to the last line.
    let all = d.docker(&["logs", "rot"]);
    all.ok();
    let lines: Vec<&str> = all.stdout.lines().collect();
    assert_eq!(lines.last(), Some(&"done-1"), "{all}");
    let numbers: Vec<u32> = lines[..lines.len() - 1]
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(numbers.last(), Some(&500));
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    assert!(
        (10..100).contains(&numbers.len()),
        "{} lines kept",
        numbers.len()
    );
    let tail = d.docker(&["logs", "--tail", "30", "rot"]);
    assert_eq!(
        tail.stdout.lines().collect::<Vec<_>>(),
        lines[lines.len() - 30..],
        "{tail}"
    );
    // A follower reads on across a rotation.
    let follow = d.api_send("GET", "/containers/rot/logs?stdout=1&follow=1&tail=0", None);
    wait_for(Duration::from_secs(20), "the second batch", || {
        d.docker(&["logs", "--tail", "1", "rot"])
            .stdout
            .contains("520")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    d.docker(&["kill", "rot"]).ok();
    let text = follow.finish().text();
    let got: Vec<u32> = (501..=520)
        .filter(|n| text.contains(&format!("{n}\n")))
        .collect();
    assert_eq!(got.len(), 20, "{text}");
    // Bad options are refused at create.
    let bad = d.docker(&["create", "--log-opt", "max-size=lots", "busybox"]);
    assert!(bad.stderr.contains("invalid value for max-size"), "{bad}");
    d.docker(&["rm", "-f", "rot"]).ok();
}
