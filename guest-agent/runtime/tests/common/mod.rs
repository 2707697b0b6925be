//! Helpers shared by the integration tests: a busybox bundle, a runc-like
//! spec, output capture. Tests need root and /bin/busybox and say why they
//! skip otherwise.
#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use vmrun_runtime::{Runtime, Stdio};

pub const BUSYBOX: &str = "/bin/busybox";
pub const APPLETS: &[&str] = &[
    "sh", "true", "cat", "id", "hostname", "ls", "sleep", "echo", "touch", "pwd", "test", "[",
    "readlink", "stat", "tty", "stty", "grep", "mkdir",
];

/// A bundle directory with a busybox rootfs; removed on drop.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub state: tempfile::TempDir,
}

pub fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        vmrun_test_skip::report(format_args!("needs root"));
        return false;
    }
    if !Path::new(BUSYBOX).exists() {
        vmrun_test_skip::report(format_args!(
            "{BUSYBOX} not found (apt-get install busybox-static)"
        ));
        return false;
    }
    true
}

impl Bundle {
    pub fn new() -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        // A hard link, not a copy: a copy's write descriptor can leak into a child another test
        // thread forks at that moment, and exec of the copy then fails with ETXTBSY.
        if std::fs::hard_link(BUSYBOX, bin.join("busybox")).is_err() {
            std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
        }
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

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn runtime(&self) -> Runtime {
        Runtime::new(self.state.path())
    }
}

/// A runc-like default spec running `args`, with `edit` applied to the JSON.
pub fn spec(id: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> Spec {
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
pub fn output_file() -> (tempfile::NamedTempFile, Stdio) {
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

pub fn wait(pid: Pid) -> i32 {
    match waitpid(pid, None).unwrap() {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        other => panic!("unexpected wait status {other:?}"),
    }
}

/// Runs to completion; (exit code, output).
pub fn run(bundle: &Bundle, id: &str, spec: &Spec) -> (i32, String) {
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
