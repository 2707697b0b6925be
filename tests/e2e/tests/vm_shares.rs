//! Host directories shared into containers in VMs (`-v /host/dir:/ctr/dir[:ro]`): a FUSE
//! file system served by the daemon over vsock. Round trips both ways (read, write,
//! rename, delete, mkdir), a host change seen by the container's next read and a
//! container's write seen by the host at once, files the container makes owned on the
//! host by the share's owner, symlinks that point out of the share resolving inside the
//! container and never on the host, `:ro` refused, in a per-container VM and in the
//! shared VM.
//!
//! Needs root, the docker CLI and a VM backend; skips, saying which, without them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use vmrun_e2e::vm::{docker, isolation_daemon, shared_vm_daemon};
use vmrun_e2e::Daemon;

/// A host directory to share, owned by 1000:1000, with a file, a subdirectory and
/// symlinks that lead out of it; and a file beside it the container must never reach.
struct ShareDir {
    base: PathBuf,
}

impl ShareDir {
    fn new(tag: &str) -> Self {
        let base = std::env::temp_dir().join(format!("vmrun-share-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("share");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("hello.txt"), "from the host\n").unwrap();
        std::fs::write(dir.join("sub/gone.txt"), "delete me\n").unwrap();
        std::fs::write(base.join("secret.txt"), "host only\n").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), dir.join("abs-escape")).unwrap();
        std::os::unix::fs::symlink("../secret.txt", dir.join("rel-escape")).unwrap();
        for p in [&base, &dir, &dir.join("sub")] {
            std::os::unix::fs::chown(p, Some(1000), Some(1000)).unwrap();
        }
        ShareDir { base }
    }

    fn dir(&self) -> PathBuf {
        self.base.join("share")
    }

    fn volume(&self, target: &str) -> String {
        format!("{}:{target}", self.dir().display())
    }
}

impl Drop for ShareDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn run(d: &Daemon, args: &[&str], volume: &str, script: &str) -> vmrun_e2e::CmdOutput {
    let mut argv = vec!["run", "--rm", "-v", volume];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["busybox", "sh", "-c", script]);
    docker(d, &argv)
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

fn shares_work(d: &Daemon, args: &[&str], tag: &str) {
    let share = ShareDir::new(tag);
    let dir = share.dir();

    // Both ways in one run: read, write, mkdir, rename, delete.
    let out = run(
        d,
        args,
        &share.volume("/s"),
        "cat /s/hello.txt && echo new > /s/made.txt && mkdir /s/d2 \
         && mv /s/made.txt /s/d2/moved.txt && rm /s/sub/gone.txt && ls /s /s/sub",
    );
    out.ok();
    assert!(out.stdout.starts_with("from the host\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.join("d2/moved.txt")).unwrap(),
        "new\n"
    );
    assert!(!dir.join("made.txt").exists());
    assert!(!dir.join("sub/gone.txt").exists());
    // Made by root in the container, owned on the host by the share's owner.
    assert_eq!(owner(&dir.join("d2/moved.txt")), (1000, 1000));
    assert_eq!(owner(&dir.join("d2")), (1000, 1000));

    // Symlinks out of the share resolve in the container's own tree, never the host's.
    let out = run(
        d,
        args,
        &share.volume("/s"),
        "readlink /s/rel-escape; cat /s/rel-escape /s/abs-escape 2>&1; true",
    );
    out.ok();
    assert!(out.stdout.starts_with("../secret.txt\n"), "{out}");
    assert!(!out.stdout.contains("host only"), "{out}");

    // `:ro`: refused in the container, nothing changes on the host.
    let out = run(d, args, &share.volume("/s:ro"), "touch /s/x");
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
    assert!(!dir.join("x").exists());

    // Live: a running container sees the host's change at its next read, and the host
    // sees the container's write as soon as it is made.
    let name = format!("share-{tag}-{}", std::process::id());
    let volume = share.volume("/s");
    let mut argv = vec!["run", "-d", "--name", &name, "-v", &volume];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["busybox", "sleep", "600"]);
    docker(d, &argv).ok();
    for version in ["one", "two", "three"] {
        std::fs::write(dir.join("live.txt"), format!("{version}\n")).unwrap();
        let seen = docker(d, &["exec", &name, "cat", "/s/live.txt"]);
        seen.ok();
        assert_eq!(seen.stdout, format!("{version}\n"));
        let script = format!("echo {version} > /s/from-container.txt");
        docker(d, &["exec", &name, "sh", "-c", &script]).ok();
        assert_eq!(
            std::fs::read_to_string(dir.join("from-container.txt")).unwrap(),
            format!("{version}\n")
        );
    }
    docker(d, &["rm", "-f", &name]).ok();
}

#[test]
fn host_directories_are_shared_into_a_containers_own_vm() {
    let Some(d) = isolation_daemon() else {
        return;
    };
    shares_work(&d, &["--isolation", "vm"], "own");
}

#[test]
fn host_directories_are_shared_into_the_shared_vm() {
    let Some(d) = shared_vm_daemon() else {
        return;
    };
    shares_work(&d, &[], "shared");
}
