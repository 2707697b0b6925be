//! Small gaps found while running compose files: `-u uid:gid` gives the supplementary
//! group dockerd gives, an unknown flag before the image is refused as such, any command
//! that needs the daemon starts it (and says so), an over-long volume name is a 400, an
//! exec runs as the container's user, and `network ls` honours its filters.

use std::path::Path;

use vmrun_e2e::reference::ReferenceDaemon;
use vmrun_e2e::{require_root, Daemon};

#[test]
fn user_with_group_gets_dockers_supplementary_groups() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let ours = d.docker(&["run", "--rm", "-u", "1000:1000", "busybox", "id"]);
    ours.ok();
    assert_eq!(ours.stdout.trim(), "uid=1000 gid=1000 groups=1000");
    let root = d.docker(&["run", "--rm", "busybox", "id"]);
    root.ok();
    match ReferenceDaemon::start() {
        Ok(oracle) => {
            for (args, mine) in [
                (&["-u", "1000:1000"][..], &ours.stdout),
                (&[][..], &root.stdout),
            ] {
                let mut full = vec!["run", "--rm", "--network", "none"];
                full.extend_from_slice(args);
                full.extend_from_slice(&["busybox", "id"]);
                let theirs = oracle.docker(&full);
                theirs.ok();
                assert_eq!(mine, &theirs.stdout, "{args:?}");
            }
        }
        Err(reason) => vmrun_test_skip::report(&reason),
    }
}

#[test]
fn an_unknown_flag_before_the_image_is_refused() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    for cmd in ["run", "create"] {
        let out = d.vmrun(&[cmd, "--bogus", "busybox", "true"]);
        assert_eq!(out.code, 125, "{out}");
        assert!(out.stderr.contains("unknown flag: --bogus"), "{out}");
        assert!(!out.stderr.contains("Unable to find image"), "{out}");
    }
    let ps = d.vmrun(&["ps", "-aq"]);
    assert_eq!(ps.stdout.trim(), "", "nothing was created");
    // Flags after the image belong to the command.
    let out = d.vmrun(&["run", "--rm", "busybox", "echo", "--bogus"]);
    out.ok();
    assert_eq!(out.stdout, "--bogus\n");
}

#[test]
fn commands_start_a_missing_daemon_and_say_so() {
    if !require_root() {
        return;
    }
    let bridge_existed = Path::new("/sys/class/net/vmrun0").exists();
    let mut d = Daemon::start();
    d.vmrun(&["create", "--name", "kept", "busybox", "true"])
        .ok();
    d.stop();
    for args in [
        &["ps", "-a", "--format", "{{.Names}}"][..],
        &["volume", "ls"][..],
    ] {
        let out = d.vmrun(args);
        out.ok();
        if args[0] == "ps" {
            assert!(out.stderr.contains("started the vmrun daemon"), "{out}");
            assert_eq!(out.stdout.trim(), "kept", "{out}");
        } else {
            assert!(!out.stderr.contains("started"), "already running: {out}");
        }
    }
    drop(d);
    if !bridge_existed {
        vmrun_e2e::cleanup::remove_bridge("vmrun0");
    }
}

#[test]
fn an_overlong_volume_name_is_a_bad_request() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let name = "v".repeat(5000);
    let r = d.api(
        "POST",
        "/volumes/create",
        Some(&format!(r#"{{"Name":"{name}"}}"#)),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("too long"), "{}", r.text());
    let r = d.api("GET", &format!("/volumes/{name}"), None);
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn an_exec_runs_as_the_containers_user() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "as-user",
        "-u",
        "1000:1000",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    let inherited = d.docker(&["exec", "as-user", "id", "-u"]);
    inherited.ok();
    assert_eq!(inherited.stdout.trim(), "1000");
    let asked = d.docker(&["exec", "-u", "0", "as-user", "id", "-u"]);
    asked.ok();
    assert_eq!(asked.stdout.trim(), "0");
    d.docker(&["rm", "-f", "as-user"]).ok();
}

#[test]
fn network_ls_filters_by_label_name_and_type() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.docker(&["network", "create", "--label", "team=a", "filt-a"])
        .ok();
    d.docker(&["network", "create", "filt-b"]).ok();
    let names = |args: &[&str]| {
        let mut argv = vec!["network", "ls", "--format", "{{.Name}}"];
        argv.extend_from_slice(args);
        let out = d.docker(&argv);
        out.ok();
        let mut v: Vec<String> = out.stdout.lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(names(&["--filter", "label=team=a"]), ["filt-a"]);
    assert_eq!(names(&["--filter", "label=team"]), ["filt-a"]);
    assert_eq!(names(&["--filter", "name=filt-"]), ["filt-a", "filt-b"]);
    assert_eq!(names(&["--filter", "type=custom"]), ["filt-a", "filt-b"]);
    assert_eq!(
        names(&["--filter", "type=builtin"]),
        ["bridge", "host", "none"]
    );
    for n in ["filt-a", "filt-b"] {
        d.docker(&["network", "rm", n]).ok();
    }
}
