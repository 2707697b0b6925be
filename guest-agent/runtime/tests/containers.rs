//! Real containers from a busybox rootfs. Need root and /bin/busybox; each
//! test prints why it skips otherwise.

mod common;

use std::path::PathBuf;

use common::{can_run, output_file, run, spec, wait, Bundle};
use nix::sys::wait::waitpid;
use serde_json::json;
use vmrun_runtime::{Runtime, RuntimeError, Status};

#[test]
fn exit_code_and_pid_one() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let s = spec(
        "exitcode",
        &["sh", "-c", "echo $$; readlink /proc/1/exe; exit 7"],
        |_| {},
    );
    let (code, out) = run(&b, "exitcode", &s);
    assert_eq!(code, 7, "{out}");
    assert_eq!(out, "1\n/bin/busybox\n");
    assert!(
        !b.state.path().join("exitcode").exists(),
        "delete removes the state dir"
    );
}

#[test]
fn env_cwd_user_and_hostname() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let s = spec(
        "envuser",
        &["sh", "-c", "echo $FOO; pwd; id -u; id -g; id -G; hostname"],
        |v| {
            v["process"]["env"]
                .as_array_mut()
                .unwrap()
                .push(json!("FOO=bar baz"));
            v["process"]["cwd"] = json!("/work/dir");
            v["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [1002]});
            v["hostname"] = json!("box1");
        },
    );
    let (code, out) = run(&b, "envuser", &s);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "bar baz\n/work/dir\n1000\n1001\n1001 1002\nbox1\n");
}

#[test]
fn readonly_rootfs_and_binds() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let ro_src = tempfile::tempdir().unwrap();
    let rw_src = tempfile::tempdir().unwrap();
    let script = "touch /x 2>/dev/null && echo root-rw || echo root-ro; \
                  touch /ro/y 2>/dev/null && echo bind-rw || echo bind-ro; \
                  touch /rw/z && echo rw-ok";
    let s = spec("readonly", &["sh", "-c", script], |v| {
        v["root"]["readonly"] = json!(true);
        let mounts = v["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/ro", "type": "bind", "source": ro_src.path(), "options": ["rbind", "ro"]}));
        mounts.push(json!({"destination": "/rw", "type": "bind", "source": rw_src.path(), "options": ["rbind", "rw"]}));
    });
    let (code, out) = run(&b, "readonly", &s);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "root-ro\nbind-ro\nrw-ok\n");
    assert!(rw_src.path().join("z").exists());
    assert!(!ro_src.path().join("y").exists());
}

#[test]
fn masked_and_readonly_paths() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let script = "cat /etc/secret; echo [; ls /secretdir; echo ]; \
                  (echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null && echo sys-rw || echo sys-ro";
    let s = spec("masked", &["sh", "-c", script], |_| {});
    let (code, out) = run(&b, "masked", &s);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "[\n]\nsys-ro\n");
}

#[test]
fn missing_executable_is_reported() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let rt = b.runtime();
    let s = spec("missing-run", &["nosuchprog"], |_| {});
    let (_file, stdio) = output_file();
    let err = rt.run("missing-run", b.path(), &s, stdio).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::ExecutableNotFound { name } if name == "nosuchprog"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "exec: \"nosuchprog\": executable file not found in $PATH"
    );
    assert!(
        rt.load("missing-run").is_err(),
        "failed run leaves no state"
    );

    // Through create + start: the error comes back from start.
    let s = spec("missing-start", &["/bin/nope"], |_| {});
    let (_file, stdio) = output_file();
    let mut c = rt.create("missing-start", b.path(), &s, stdio).unwrap();
    let err = rt.start(&mut c).unwrap_err();
    assert!(
        matches!(err, RuntimeError::ExecutableNotFound { .. }),
        "{err}"
    );
    let _ = waitpid(c.pid, None);
    rt.delete("missing-start", true).unwrap();
}

#[test]
fn create_start_exec_delete() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let rt = b.runtime();
    let id = "lifecycle";
    let s = spec(id, &["sleep", "30"], |_| {});
    let (_file, stdio) = output_file();
    let mut c = rt.create(id, b.path(), &s, stdio).unwrap();
    assert_eq!(c.status(), Status::Created);
    assert_eq!(rt.load(id).unwrap().oci_state().status, Status::Created);
    rt.start(&mut c).unwrap();
    assert_eq!(rt.load(id).unwrap().status(), Status::Running);

    // exec sees the container's pid namespace: PID 1 is sleep, itself is not 1.
    let mut process = s.process().clone().unwrap();
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "cat /proc/1/cmdline; echo; echo $$; hostname".into(),
    ]));
    let (file, stdio) = output_file();
    let exec = rt.exec(id, &process, stdio).unwrap();
    assert_eq!(wait(exec.pid), 0);
    let out = std::fs::read_to_string(file.path()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "sleep\u{0}30\u{0}", "{out}");
    let inner_pid: i32 = lines[1].parse().unwrap();
    assert!(inner_pid > 1 && inner_pid != exec.pid.as_raw(), "{out}");
    assert_eq!(lines[2], "vmrun-test");

    // exec of a missing program.
    process.set_args(Some(vec!["nosuch".into()]));
    let (_file, stdio) = output_file();
    let err = rt.exec(id, &process, stdio).unwrap_err();
    assert!(
        matches!(err, RuntimeError::ExecutableNotFound { .. }),
        "{err}"
    );

    assert!(matches!(
        rt.delete(id, false),
        Err(RuntimeError::InvalidState { .. })
    ));
    rt.kill(id, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(wait(c.pid), 128 + 9);
    rt.delete(id, false).unwrap();
    assert!(matches!(rt.load(id), Err(RuntimeError::NotFound(_))));
}

#[test]
fn long_state_root_create_and_start() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    // Like /tmp/vmrun-e2e.XXXXXX/run/runtime, but well past the 107-byte
    // socket path limit once a 64-character id is added.
    let root = b.state.path().join("r".repeat(100)).join("run/runtime");
    assert!(root.as_os_str().len() >= 100);
    let rt = Runtime::new(&root);
    let id = "0123456789abcdef".repeat(4);
    let s = spec(&id, &["sh", "-c", "echo started"], |_| {});
    let (file, stdio) = output_file();
    let mut c = rt.create(&id, b.path(), &s, stdio).unwrap();
    assert!(root.join(&id).join("start.sock").exists());
    rt.start(&mut c).unwrap();
    assert_eq!(wait(c.pid), 0);
    rt.delete(&id, false).unwrap();
    assert_eq!(std::fs::read_to_string(file.path()).unwrap(), "started\n");
}

#[test]
fn overlay_mount_orders_layers() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| -> PathBuf {
        let p = dir.path().join(s);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let (top, bottom, upper, work, merged) =
        (p("top"), p("bottom"), p("upper"), p("work"), p("merged"));
    std::fs::write(top.join("f"), "top").unwrap();
    std::fs::write(bottom.join("f"), "bottom").unwrap();
    std::fs::write(bottom.join("g"), "only-bottom").unwrap();
    vmrun_runtime::mount_overlay(&[top, bottom], &upper, &work, &merged).unwrap();
    let f = std::fs::read_to_string(merged.join("f"));
    let g = std::fs::read_to_string(merged.join("g"));
    std::fs::write(merged.join("new"), "x").unwrap_or_default();
    vmrun_runtime::unmount(&merged).unwrap();
    assert_eq!(f.unwrap(), "top");
    assert_eq!(g.unwrap(), "only-bottom");
    assert!(upper.join("new").exists());
}

#[test]
fn overlay_with_many_layers_exceeding_a_page() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir
        .path()
        .join("a-rather-long-directory-name-for-layers-to-make-options-long");
    let mut lowers = Vec::new();
    for i in 0..60 {
        let l = base
            .join(format!("layer-{i:03}-with-a-long-name-too"))
            .join("fs");
        std::fs::create_dir_all(&l).unwrap();
        std::fs::write(l.join(format!("f{i}")), "x").unwrap();
        lowers.push(l);
    }
    let (upper, work, merged) = (
        base.join("upper"),
        base.join("work"),
        dir.path().join("merged"),
    );
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    vmrun_runtime::mount_overlay(&lowers, &upper, &work, &merged).unwrap();
    let seen = (0..60)
        .filter(|i| merged.join(format!("f{i}")).exists())
        .count();
    vmrun_runtime::unmount(&merged).unwrap();
    assert_eq!(seen, 60);
}
