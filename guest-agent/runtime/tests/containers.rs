//! Real containers from a busybox rootfs. Need root and /bin/busybox; each
//! test prints why it skips otherwise.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use vmrun_runtime::{Runtime, RuntimeError, Status, Stdio};

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "true", "cat", "id", "hostname", "ls", "sleep", "echo", "touch", "pwd", "test", "[",
    "readlink", "stat",
];

/// A bundle directory with a busybox rootfs; removed on drop.
struct Bundle {
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
}

fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return false;
    }
    if !Path::new(BUSYBOX).exists() {
        eprintln!("skipping: {BUSYBOX} not found (apt-get install busybox-static)");
        return false;
    }
    true
}

impl Bundle {
    fn new() -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("rootfs/etc")).unwrap();
        std::fs::write(dir.path().join("rootfs/etc/secret"), "top secret\n").unwrap();
        std::fs::create_dir_all(dir.path().join("rootfs/secretdir")).unwrap();
        std::fs::write(dir.path().join("rootfs/secretdir/f"), "x").unwrap();
        Bundle {
            dir,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn runtime(&self) -> Runtime {
        Runtime::new(self.state.path())
    }
}

/// A runc-like default spec running `args`, with `edit` applied to the JSON.
fn spec(id: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> Spec {
    let mut v = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "vmrun-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "cgroupsPath": format!("/vmrun-test/{id}"),
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/etc/secret", "/secretdir"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

/// A file that collects a container's output (files, not pipes: another
/// test's child may briefly hold a pipe's write end).
fn output_file() -> (tempfile::NamedTempFile, Stdio) {
    let file = tempfile::NamedTempFile::new().unwrap();
    // One open file description for both: a shared offset, no overwriting.
    let out = file.reopen().unwrap();
    let err: OwnedFd = out.try_clone().unwrap().into();
    let out: OwnedFd = out.into();
    (
        file,
        Stdio::Fds {
            stdin: None,
            stdout: out,
            stderr: err,
        },
    )
}

fn wait(pid: Pid) -> i32 {
    match waitpid(pid, None).unwrap() {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        other => panic!("unexpected wait status {other:?}"),
    }
}

/// Runs to completion; (exit code, output).
fn run(bundle: &Bundle, id: &str, spec: &Spec) -> (i32, String) {
    let rt = bundle.runtime();
    let (file, stdio) = output_file();
    let container = rt.run(id, bundle.path(), spec, stdio).unwrap();
    let code = wait(container.pid);
    rt.delete(id, false).unwrap();
    let mut out = String::new();
    File::open(file.path())
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (code, out)
}

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
fn terminal_gives_a_pty() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let rt = b.runtime();
    let id = "tty";
    let s = spec(
        id,
        &[
            "sh",
            "-c",
            "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; stat -c %F /dev/console",
        ],
        |v| {
            v["process"]["terminal"] = json!(true);
        },
    );
    let c = rt.run(id, b.path(), &s, Stdio::Terminal).unwrap();
    let master = c.console.expect("console master");
    let mut master = File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // The master reads EIO once the slave side is closed.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(wait(c.pid), 0);
    rt.delete(id, false).unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("is-a-tty"), "{out}");
    assert!(out.contains("character special file"), "{out}");
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
