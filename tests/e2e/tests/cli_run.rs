//! `vmrun run`: output, exit codes, environment, users, mounts, names, images.

use vmrun_e2e::{require_root, Daemon};

#[test]
fn run_rm_echo_prints_hello() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let out = d.vmrun(&["run", "--rm", "busybox", "echo", "hello"]);
    out.ok();
    assert_eq!(out.stdout, "hello\n", "{out}");
}

#[test]
fn exit_code_of_the_command_is_the_exit_code_of_run() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.vmrun(&["run", "--rm", "busybox", "sh", "-c", "exit 3"])
        .code_is(3);
    d.vmrun(&["run", "--rm", "busybox", "false"]).code_is(1);
}

#[test]
fn missing_command_exits_127_with_dockers_message() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let out = d.vmrun(&["run", "--rm", "busybox", "nosuch"]);
    out.code_is(127);
    assert!(
        out.stderr
            .contains(r#"exec: "nosuch": executable file not found in $PATH"#),
        "{out}"
    );
}

#[test]
fn invalid_port_spec_exits_125_with_a_message() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let out = d.vmrun(&["run", "--rm", "-p", "80:abc", "busybox", "true"]);
    out.code_is(125);
    assert!(
        out.stderr.contains("abc"),
        "message should name the bad port:\n{out}"
    );
    // Nothing was created.
    let ps = d.vmrun(&["ps", "-a", "-q"]);
    ps.ok();
    assert_eq!(ps.out(), "", "{ps}");
}

#[test]
fn env_workdir_and_user_apply() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let out = d.vmrun(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar baz",
        "-w",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        "echo \"$FOO\"; pwd",
    ]);
    out.ok();
    assert_eq!(out.stdout, "bar baz\n/tmp\n", "{out}");

    let out = d.vmrun(&["run", "--rm", "-u", "nobody", "busybox", "id", "-u"]);
    out.ok();
    assert_eq!(out.out(), "65534", "{out}");

    let out = d.vmrun(&[
        "run",
        "--rm",
        "-u",
        "1234:5678",
        "busybox",
        "sh",
        "-c",
        "id -u; id -g",
    ]);
    out.ok();
    assert_eq!(out.stdout, "1234\n5678\n", "{out}");

    // A workdir that does not exist is created, as docker does.
    let out = d.vmrun(&["run", "--rm", "-w", "/new/dir", "busybox", "pwd"]);
    out.ok();
    assert_eq!(out.out(), "/new/dir", "{out}");
}

#[test]
fn unknown_user_fails_clearly() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let out = d.vmrun(&["run", "--rm", "-u", "nosuchuser", "busybox", "id"]);
    assert!(!out.success(), "{out}");
    assert!(out.stdout.is_empty(), "the command must not run:\n{out}");
    assert!(
        out.stderr.contains("nosuchuser") && out.stderr.contains("user"),
        "message should name the user:\n{out}"
    );
}

#[test]
fn rm_removes_the_container_after_it_exits() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    // `run --rm` waits for the removal (`wait?condition=removed`) before it returns.
    d.vmrun(&["run", "--rm", "--name", "gone", "busybox", "true"])
        .ok();
    assert_eq!(d.state("gone"), None, "still there after run --rm returned");
    let ps = d.vmrun(&["ps", "-a", "--format", "{{.Names}}"]);
    ps.ok();
    assert!(!ps.stdout.contains("gone"), "{ps}");
    // Without --rm the container stays, exited.
    d.vmrun(&["run", "--name", "kept", "busybox", "true"]).ok();
    assert_eq!(d.state("kept").as_deref(), Some("exited"));
}

#[test]
fn name_in_use_is_refused_and_the_first_container_is_untouched() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.vmrun(&["run", "-d", "--name", "dup", "busybox", "sleep", "300"])
        .ok();
    let first = d.inspect("dup");
    let out = d.vmrun(&["run", "-d", "--name", "dup", "busybox", "true"]);
    out.code_is(125);
    assert!(out.stderr.contains("already in use"), "{out}");

    let r = d.api(
        "POST",
        "/containers/create?name=dup",
        Some(r#"{"Image":"busybox","Cmd":["true"]}"#),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.json()["message"]
        .as_str()
        .unwrap_or_default()
        .contains("already in use"));

    let after = d.inspect("dup");
    assert_eq!(after["Id"], first["Id"]);
    assert_eq!(after["State"]["Status"], "running");
    assert_eq!(after["State"]["Pid"], first["State"]["Pid"]);
    let ps = d.vmrun(&["ps", "-a", "-q"]);
    assert_eq!(ps.out().lines().count(), 1, "{ps}");
}

#[test]
fn unknown_image_fails_clearly() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let out = d.vmrun(&["run", "--rm", "localhost:1/nosuchimage:v9", "true"]);
    assert!(!out.success(), "{out}");
    assert!(out.code == 125, "docker exits 125 here:\n{out}");
    assert!(out.stderr.contains("nosuchimage"), "{out}");
    let r = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"nosuchimage:v9","Cmd":["true"]}"#),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("No such image"),
        "{}",
        r.text()
    );
}

#[test]
fn bind_mounts_show_host_files_and_ro_refuses_writes() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let share = d.dir().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("greeting"), "from the host\n").unwrap();
    let share = share.to_str().unwrap();

    let rw = format!("{share}:/data");
    let out = d.vmrun(&[
        "run",
        "--rm",
        "-v",
        &rw,
        "busybox",
        "sh",
        "-c",
        "cat /data/greeting; echo back > /data/reply",
    ]);
    out.ok();
    assert_eq!(out.stdout, "from the host\n", "{out}");
    assert_eq!(
        std::fs::read_to_string(format!("{share}/reply")).unwrap(),
        "back\n"
    );

    let ro = format!("{share}:/data:ro");
    let out = d.vmrun(&["run", "--rm", "-v", &ro, "busybox", "cat", "/data/greeting"]);
    out.ok();
    assert_eq!(out.stdout, "from the host\n", "{out}");
    let out = d.vmrun(&[
        "run",
        "--rm",
        "-v",
        &ro,
        "busybox",
        "sh",
        "-c",
        "echo x > /data/new",
    ]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
    assert!(!std::path::Path::new(&format!("{share}/new")).exists());
}

#[test]
fn missing_bind_source_exits_125_with_a_message() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let missing = d.dir().join("no-such-dir");
    let spec = format!("{}:/data", missing.display());
    let out = d.vmrun(&["run", "--rm", "-v", &spec, "busybox", "true"]);
    out.code_is(125);
    assert!(
        out.stderr.contains("does not exist") && out.stderr.contains("no-such-dir"),
        "{out}"
    );
    assert!(!missing.exists(), "the source must not be created");
}

#[test]
fn containers_start_under_a_long_exec_root() {
    if !require_root() {
        return;
    }
    // /tmp/vme-XXXXXX/exec/of/a/realistic/length: 42 bytes, shorter than many real
    // paths (e.g. under $XDG_RUNTIME_DIR or a home directory).
    let d = Daemon::start_with(vmrun_e2e::DaemonOptions {
        exec_root: "exec/of/a/realistic/length".to_string(),
        ..Default::default()
    });
    let out = d.vmrun(&["run", "--rm", "busybox", "echo", "hello"]);
    out.ok();
    assert_eq!(out.stdout, "hello\n", "{out}");
}
