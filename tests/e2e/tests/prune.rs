//! `container prune`, `network prune` and `volume prune` with filters, through the docker
//! CLI against vmrund and against Debian's dockerd (the oracle), with the same outcome;
//! API 1.42+ volume semantics (anonymous only unless `all`), and `vmrun … prune`.

use std::collections::BTreeSet;

use vmrun_e2e::reference::ReferenceDaemon;
use vmrun_e2e::{require_root, CmdOutput, Daemon};

/// Runs the same docker command against either daemon.
trait Docker {
    fn run(&self, args: &[&str]) -> CmdOutput;
}

impl Docker for Daemon {
    fn run(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = self.docker_cmd(args);
        cmd.env("DOCKER_API_VERSION", "1.41");
        vmrun_e2e::run_with_timeout(cmd, None, std::time::Duration::from_secs(60))
    }
}

impl Docker for ReferenceDaemon {
    fn run(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = self.docker_cmd(args);
        cmd.env("DOCKER_API_VERSION", "1.41");
        vmrun_e2e::run_with_timeout(cmd, None, std::time::Duration::from_secs(60))
    }
}

fn lines(out: &CmdOutput) -> BTreeSet<String> {
    out.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The scenario; what is left after each prune, and the report's shape.
fn scenario(d: &dyn Docker) -> Vec<String> {
    let mut seen = Vec::new();
    let none = ["--network", "none"];
    let create = |name: &str, label: &str| {
        let mut args = vec!["create", "--name", name, "--label", label];
        args.extend_from_slice(&none);
        args.extend_from_slice(&["busybox", "true"]);
        d.run(&args).ok();
    };
    create("keep-a", "keep=yes");
    create("app-b", "app=x");
    let mut args = vec!["run", "--name", "done-c"];
    args.extend_from_slice(&none);
    args.extend_from_slice(&["busybox", "true"]);
    d.run(&args).ok();
    let mut args = vec!["run", "-d", "--name", "running-d"];
    args.extend_from_slice(&none);
    args.extend_from_slice(&["busybox", "sleep", "600"]);
    d.run(&args).ok();

    let out = d.run(&["container", "prune", "-f", "--filter", "label!=keep=yes"]);
    out.ok();
    let report: Vec<&str> = out.stdout.lines().collect();
    seen.push(format!(
        "report: {} lines, first {:?}, last starts {:?}",
        report.len(),
        report.first().copied().unwrap_or(""),
        report.last().map(|l| &l[..l.len().min(22)]).unwrap_or("")
    ));
    seen.push(format!(
        "containers left: {:?}",
        lines(&d.run(&["ps", "-a", "--format", "{{.Names}}"]))
    ));
    let out = d.run(&[
        "container",
        "prune",
        "-f",
        "--filter",
        "until=2000-01-01T00:00:00Z",
    ]);
    out.ok();
    seen.push(format!("until 2000: {:?}", out.stdout));

    d.run(&["network", "create", "--label", "p=1", "net-one"])
        .ok();
    d.run(&["network", "create", "net-two"]).ok();
    d.run(&["network", "create", "net-three"]).ok();
    d.run(&[
        "run",
        "-d",
        "--name",
        "on-two",
        "--network",
        "net-two",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let out = d.run(&["network", "prune", "-f", "--filter", "label=p=1"]);
    out.ok();
    seen.push(format!("network prune label: {:?}", out.stdout));
    let out = d.run(&["network", "prune", "-f"]);
    out.ok();
    seen.push(format!("network prune: {:?}", out.stdout));
    let nets: BTreeSet<String> = lines(&d.run(&["network", "ls", "--format", "{{.Name}}"]))
        .into_iter()
        .filter(|n| n.starts_with("net-"))
        .collect();
    seen.push(format!("networks left: {nets:?}"));

    d.run(&["volume", "create", "vol-one"]).ok();
    d.run(&["volume", "create", "--label", "p=1", "vol-two"])
        .ok();
    let mut args = vec!["create", "--name", "user", "-v", "vol-three:/data"];
    args.extend_from_slice(&none);
    args.extend_from_slice(&["busybox", "true"]);
    d.run(&args).ok();
    let out = d.run(&["volume", "prune", "-f", "--filter", "label=p=1"]);
    out.ok();
    seen.push(format!(
        "volume prune label: {:?}",
        out.stdout.lines().take(2).collect::<Vec<_>>()
    ));
    d.run(&["volume", "prune", "-f"]).ok();
    seen.push(format!(
        "volumes left: {:?}",
        lines(&d.run(&["volume", "ls", "--format", "{{.Name}}"]))
    ));
    d.run(&["rm", "-f", "keep-a", "running-d", "on-two", "user"])
        .ok();
    d.run(&["network", "rm", "net-two"]).ok();
    d.run(&["volume", "rm", "vol-three"]).ok();
    seen
}

#[test]
fn prunes_match_dockerd() {
    if !require_root() {
        return;
    }
    let oracle = match ReferenceDaemon::start() {
        Ok(o) => o,
        Err(reason) => {
            vmrun_test_skip::report(&reason);
            return;
        }
    };
    let d = Daemon::start();
    let ours = scenario(&d);
    let theirs = scenario(&oracle);
    eprintln!("vmrund: {ours:#?}");
    assert_eq!(ours, theirs);
    assert!(
        ours[1].contains("keep-a") && ours[1].contains("running-d"),
        "{ours:?}"
    );
    assert!(
        !ours[1].contains("app-b") && !ours[1].contains("done-c"),
        "{ours:?}"
    );
}

#[test]
fn volume_prune_keeps_named_volumes_unless_all_since_api_1_42() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.docker(&["volume", "create", "named"]).ok();
    let r = d.api(
        "POST",
        "/volumes/create",
        Some(r#"{"Name":"anon","Labels":{"com.docker.volume.anonymous":""}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = d.api("POST", "/v1.45/volumes/prune", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["VolumesDeleted"], serde_json::json!(["anon"]));
    assert!(r.json()["SpaceReclaimed"].is_u64());
    let left = d.vmrun(&["volume", "ls", "--format", "{{.Name}}"]);
    assert_eq!(left.stdout.trim(), "named");
    let out = d.vmrun(&["volume", "prune", "-a", "-f"]);
    out.ok();
    assert_eq!(
        out.stdout,
        "Deleted Volumes:\nnamed\n\nTotal reclaimed space: 0B\n"
    );

    // Bad filters are 400s; the vmrun CLI forms.
    let r = d.api(
        "POST",
        "/containers/prune?filters=%7B%22dangling%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    d.vmrun(&[
        "create",
        "--name",
        "gone",
        "--network",
        "none",
        "busybox",
        "true",
    ])
    .ok();
    let out = d.vmrun(&["container", "prune", "-f"]);
    out.ok();
    assert!(out.stdout.starts_with("Deleted Containers:\n"), "{out}");
    assert!(d.state("gone").is_none());
    d.vmrun(&["network", "create", "spare"]).ok();
    let out = d.vmrun(&["network", "prune", "-f"]);
    out.ok();
    assert_eq!(out.stdout, "Deleted Networks:\nspare\n\n");
    // Without -f the question is asked; "n" keeps everything.
    d.vmrun(&["network", "create", "spare2"]).ok();
    let out = d.vmrun_stdin(&["network", "prune"], b"n\n");
    out.ok();
    assert!(
        out.stdout
            .contains("Are you sure you want to continue? [y/N]"),
        "{out}"
    );
    assert!(d.api("GET", "/networks/spare2", None).status == 200);
}
