//! `vmrun cp`, `diff`, `export`, `pause`, `unpause`, `rename`, `port` and `update`
//! against vmrund, each compared with what the docker CLI does against the same daemon:
//! the same files copied, the same lines printed, the same errors.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vmrun_e2e::{require_root, require_tool, run_with_timeout, wait_for, Daemon};

/// `mode uid:gid type [size] name` of every file under `dir`, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let script = format!(
        "cd {} && find . | sort | while read -r f; do if [ -d \"$f\" ]; then stat -c '%a %F %n' \"$f\"; else stat -c '%a %F %s %n' \"$f\"; fi; done",
        dir.display()
    );
    let mut c = Command::new("sh");
    c.args(["-c", &script]);
    let out = run_with_timeout(c, None, Duration::from_secs(30));
    out.ok();
    out.stdout.lines().map(str::to_owned).collect()
}

fn tar_names(path: &Path) -> Vec<String> {
    let mut c = Command::new("tar");
    c.arg("-tf").arg(path);
    let out = run_with_timeout(c, None, Duration::from_secs(30));
    out.ok();
    let mut names: Vec<String> = out.stdout.lines().map(str::to_owned).collect();
    names.sort();
    names
}

#[test]
fn vmrun_cp_copies_as_docker_cp() {
    if !require_root() || !require_tool("docker") || !require_tool("tar") {
        return;
    }
    let d = Daemon::start();
    d.docker(&[
        "run", "-d", "--name", "src", "busybox", "sh", "-c",
        "mkdir -p /data/sub && echo hi > /data/sub/f && ln -s /data/sub/f /data/link && chmod 600 /data/sub/f && touch /ready && sleep 600",
    ])
    .ok();
    wait_for(Duration::from_secs(10), "the container's files", || {
        d.docker(&["exec", "src", "test", "-e", "/ready"])
            .success()
            .then_some(())
    });
    let work = tempfile::tempdir().unwrap();
    let (by_docker, by_vmrun) = (work.path().join("docker"), work.path().join("vmrun"));
    for dir in [&by_docker, &by_vmrun] {
        std::fs::create_dir_all(dir.join("into")).unwrap();
    }
    let local = work.path().join("local");
    std::fs::create_dir_all(local.join("d")).unwrap();
    std::fs::write(local.join("d/g"), "g\n").unwrap();
    std::fs::write(local.join("f.txt"), "local\n").unwrap();
    let l = local.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["src:/data".into(), "{}/dir".into()], "dir"),
        (vec!["src:/data/".into(), "{}/into".into()], "into a dir"),
        (vec!["src:/data/.".into(), "{}/contents".into()], "contents"),
        (vec!["src:/data/sub/f".into(), "{}/file".into()], "file"),
        (vec!["src:/data/link".into(), "{}/link".into()], "link"),
        (
            vec!["-L".into(), "src:/data/link".into(), "{}/followed".into()],
            "followed",
        ),
        (vec!["src:/nope".into(), "{}/nope".into()], "missing"),
        (
            vec![format!("{l}/f.txt"), "src:/tmp/TAG-file".into()],
            "in file",
        ),
        (vec![format!("{l}"), "src:/tmp/TAG-dir".into()], "in dir"),
        (vec![format!("{l}/."), "src:/tmp/".into()], "in contents"),
        (
            vec![format!("{l}/f.txt"), "src:/missing/x".into()],
            "in missing",
        ),
    ];
    for (args, what) in &cases {
        let mut outs = Vec::new();
        for (tag, dir, tool) in [
            ("docker", &by_docker, "docker"),
            ("vmrun", &by_vmrun, "vmrun"),
        ] {
            let mut full = vec!["cp".to_string()];
            full.extend(
                args.iter()
                    .map(|a| a.replace("{}", dir.to_str().unwrap()).replace("TAG", tag)),
            );
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            let out = if tool == "docker" {
                d.docker(&refs)
            } else {
                d.vmrun(&refs)
            };
            outs.push((out.code, out.stderr.trim().replace("docker", "vmrun")));
        }
        assert_eq!(outs[0].0, outs[1].0, "{what}: exit codes differ: {outs:?}");
        if outs[0].0 != 0 {
            assert_eq!(outs[0].1, outs[1].1, "{what}: messages differ");
        }
    }
    assert_eq!(tree(&by_docker), tree(&by_vmrun));
    let inside = |tag: &str| {
        let out = d.docker(&[
            "exec",
            "src",
            "sh",
            "-c",
            &format!("cd /tmp && find {tag}-* d f.txt"),
        ]);
        out.ok();
        let mut names: Vec<String> = out.stdout.lines().map(|l| l.replace(tag, "TAG")).collect();
        names.sort();
        names
    };
    assert_eq!(inside("docker"), inside("vmrun"));
    d.docker(&["rm", "-f", "src"]).ok();
}

#[test]
fn vmrun_container_commands_print_as_docker() {
    if !require_root() || !require_tool("docker") || !require_tool("tar") {
        return;
    }
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "ops",
        "-p",
        "127.0.0.1::80",
        "-p",
        "127.0.0.1::53/udp",
        "busybox",
        "sh",
        "-c",
        "echo x > /new && rm /bin/true && sleep 600",
    ])
    .ok();
    wait_for(Duration::from_secs(10), "the container's changes", || {
        d.docker(&["exec", "ops", "test", "-e", "/new"])
            .success()
            .then_some(())
    });
    let same = |args: &[&str]| {
        let docker = d.docker(args);
        let vmrun = d.vmrun(args);
        assert_eq!(
            (
                docker.code,
                docker.stdout.clone(),
                docker.stderr.trim().to_owned()
            ),
            (
                vmrun.code,
                vmrun.stdout.clone(),
                vmrun.stderr.trim().replace("vmrun", "docker")
            ),
            "{args:?}\ndocker: {docker}\nvmrun: {vmrun}"
        );
    };
    same(&["diff", "ops"]);
    same(&["port", "ops"]);
    same(&["port", "ops", "80"]);
    same(&["port", "ops", "53/udp"]);
    same(&["port", "ops", "443"]);
    same(&["diff", "nope"]);
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a.tar"), work.path().join("b.tar"));
    d.docker(&["export", "-o", a.to_str().unwrap(), "ops"]).ok();
    d.vmrun(&["export", "-o", b.to_str().unwrap(), "ops"]).ok();
    assert_eq!(tar_names(&a), tar_names(&b));

    // pause/unpause/update print the names; errors are the daemon's.
    for tool in ["docker", "vmrun"] {
        let run = |args: &[&str]| {
            if tool == "docker" {
                d.docker(args)
            } else {
                d.vmrun(args)
            }
        };
        assert_eq!(run(&["pause", "ops"]).stdout, "ops\n");
        let again = run(&["pause", "ops"]);
        assert_eq!(again.code, 1, "{again}");
        assert!(again.stderr.contains("is already paused"), "{again}");
        assert_eq!(run(&["unpause", "ops"]).stdout, "ops\n");
        assert_eq!(
            run(&["update", "--memory", "64m", "--pids-limit", "30", "ops"]).stdout,
            "ops\n"
        );
        let bad = run(&["update", "--memory", "1m", "ops"]);
        assert!(
            bad.stderr.contains("Minimum memory limit allowed is 6MB"),
            "{bad}"
        );
        let none = run(&["update", "ops"]);
        assert!(
            none.stderr.contains("you must provide one or more flags"),
            "{none}"
        );
        run(&["rename", "ops", "ops2"]).ok();
        run(&["rename", "ops2", "ops"]).ok();
    }
    let hc = d.inspect("ops");
    assert_eq!(hc["HostConfig"]["Memory"], 64 << 20);
    assert_eq!(hc["HostConfig"]["PidsLimit"], 30);
    d.docker(&["rm", "-f", "ops"]).ok();
}
