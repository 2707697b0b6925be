//! Health checks on real containers: `--health-*` flags and an image's `HEALTHCHECK`, run
//! inside the container on schedule; `State.Health` in inspect, `health_status` events,
//! and `(health: starting)`/`(healthy)`/`(unhealthy)` in `docker ps` and `vmrun ps`.

use std::time::Duration;

use vmrun_e2e::{require_root, wait_for, Daemon};

fn health_status(d: &Daemon, name: &str) -> String {
    d.inspect(name)["State"]["Health"]["Status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn ps_status(out: &str, name: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(&format!("{name}|")))
        .map(|l| l.split('|').nth(1).unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn flags_run_a_check_that_turns_healthy_then_unhealthy() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let since = chrono_now();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "test -f /tmp/ok && echo fine",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "--health-timeout",
        "5s",
        // Failures inside the start period leave it starting.
        "--health-start-period",
        "60s",
        "--health-start-interval",
        "500ms",
        "busybox",
        "sh",
        "-c",
        "sleep 4; touch /tmp/ok; exec sleep 600",
    ])
    .ok();
    std::thread::sleep(Duration::from_secs(3));
    let ps = d.docker(&["ps", "--format", "{{.Names}}|{{.Status}}"]);
    assert!(
        ps_status(&ps.stdout, "web").ends_with("(health: starting)"),
        "{ps}"
    );
    let h = d.inspect("web")["State"]["Health"].clone();
    assert_eq!(h["Status"], "starting", "{h}");
    assert_eq!(h["FailingStreak"], 0, "start period: {h}");
    wait_for(Duration::from_secs(30), "web healthy", || {
        (health_status(&d, "web") == "healthy").then_some(())
    });
    let inspect = d.inspect("web");
    let h = &inspect["State"]["Health"];
    assert_eq!(h["FailingStreak"], 0, "{h}");
    let log = h["Log"].as_array().unwrap();
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 0, "{h}");
    assert_eq!(last["Output"], "fine\n", "{h}");
    assert!(log.len() <= 5);
    assert_eq!(
        inspect["Config"]["Healthcheck"]["StartInterval"],
        500_000_000
    );
    assert_eq!(
        inspect["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -f /tmp/ok && echo fine"])
    );
    let ps = d.docker(&["ps", "--format", "{{.Names}}|{{.Status}}"]);
    assert!(ps_status(&ps.stdout, "web").ends_with("(healthy)"), "{ps}");
    let ps = d.vmrun(&["ps", "--format", "{{.Names}}|{{.Status}}"]);
    assert!(ps_status(&ps.stdout, "web").ends_with("(healthy)"), "{ps}");
    let healthy = d.docker(&["ps", "--filter", "health=healthy", "--format", "{{.Names}}"]);
    assert_eq!(healthy.stdout.trim(), "web", "{healthy}");
    let none = d.docker(&["ps", "--filter", "health=none", "--format", "{{.Names}}"]);
    assert_eq!(none.stdout.trim(), "", "{none}");

    d.docker(&["exec", "web", "rm", "/tmp/ok"]).ok();
    wait_for(Duration::from_secs(30), "web unhealthy", || {
        (health_status(&d, "web") == "unhealthy").then_some(())
    });
    let h = d.inspect("web")["State"]["Health"].clone();
    assert!(h["FailingStreak"].as_i64().unwrap() >= 2, "{h}");
    let ps = d.vmrun(&["ps", "--format", "{{.Names}}|{{.Status}}"]);
    assert!(
        ps_status(&ps.stdout, "web").ends_with("(unhealthy)"),
        "{ps}"
    );

    let until = chrono_now() + 1;
    let events = d.api("GET", &format!("/events?since={since}&until={until}"), None);
    let text = events.text();
    let healthy = text.find("\"health_status: healthy\"");
    let unhealthy = text.find("\"health_status: unhealthy\"");
    assert!(
        healthy.is_some() && unhealthy.is_some() && healthy < unhealthy,
        "{text}"
    );
    d.docker(&["rm", "-f", "web"]).ok();
}

#[test]
fn an_images_healthcheck_is_run_and_can_be_disabled() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nHEALTHCHECK --interval=1s --retries=1 CMD [\"sh\", \"-c\", \"exit 1\"]\n",
    )
    .unwrap();
    let mut build = d.docker_cmd(&[
        "build",
        "-q",
        "-t",
        "e2e/checked",
        ctx.path().to_str().unwrap(),
    ]);
    build.env("DOCKER_BUILDKIT", "0");
    let out = vmrun_e2e::command::run_with_timeout(build, None, Duration::from_secs(120));
    out.ok();
    d.docker(&["run", "-d", "--name", "img", "e2e/checked", "sleep", "600"])
        .ok();
    wait_for(Duration::from_secs(30), "img unhealthy", || {
        (health_status(&d, "img") == "unhealthy").then_some(())
    });
    d.docker(&[
        "run",
        "-d",
        "--name",
        "off",
        "--no-healthcheck",
        "e2e/checked",
        "sleep",
        "600",
    ])
    .ok();
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.inspect("off")["State"]["Health"].is_null());
    let ps = d.docker(&["ps", "--format", "{{.Names}}|{{.Status}}"]);
    assert!(!ps_status(&ps.stdout, "off").contains("health"), "{ps}");
    d.docker(&["rm", "-f", "img", "off"]).ok();
}

/// Seconds since the epoch, as `/events?since=` takes them.
fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
