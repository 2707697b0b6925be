//! The json-file log's rotation (`--log-opt max-size=1k --log-opt max-file=3`), the same
//! scenario natively and for containers in VMs: no file past the size, no more files
//! than `max-file`, what is kept read in order across the files (`logs`, `--tail`), a
//! follower reading on across a rotation.

use std::time::Duration;

use crate::{wait_for, Daemon};

/// Runs a chatty container `rot` on `d` (with `run_flags` after `run`, e.g.
/// `--isolation vm`), waiting up to `timeout` for each batch of its output, checks the
/// log files and removes it.
pub fn rotation_scenario(d: &Daemon, run_flags: &[&str], timeout: Duration) {
    let mut run = vec!["run", "-d"];
    run.extend_from_slice(run_flags);
    run.extend_from_slice(&[
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
    ]);
    d.docker(&run).ok();
    wait_for(timeout, "the first batch", || {
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
    // Three files of 1 KiB keep 27 to 39 records (their length varies with the time
    // stamp's trailing zeros): a tail of 10 is always within them.
    let tail = d.docker(&["logs", "--tail", "10", "rot"]);
    assert_eq!(
        tail.stdout.lines().collect::<Vec<_>>(),
        lines[lines.len() - 10..],
        "{tail}"
    );
    // A follower reads on across a rotation.
    let follow = d.api_send("GET", "/containers/rot/logs?stdout=1&follow=1&tail=0", None);
    wait_for(timeout, "the second batch", || {
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
    d.docker(&["rm", "-f", "rot"]).ok();
}
