//! The agent run on this host over a Unix socket, a busybox layer, and a small blocking
//! client speaking the protocol directly (the agent's tests use no host crate).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vmrun_agent_protocol::frame::{read_frame, write_frame};
use vmrun_agent_protocol::{
    AgentError, Hello, HelloReply, Op, Reply, Request, Response, StreamTarget,
};

pub const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &["sh", "echo", "cat", "sleep", "true", "ls", "uname", "id"];

/// Why the test cannot run here, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (containers)".into());
    }
    if !Path::new(BUSYBOX).exists() {
        return Some(format!(
            "{BUSYBOX} not found (apt-get install busybox-static)"
        ));
    }
    None
}

/// `target/<profile>/vmrun-shim`, built with cargo (once per test process) if missing.
pub fn shim_binary() -> PathBuf {
    static SHIM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SHIM.get_or_init(find_or_build_shim).clone()
}

fn find_or_build_shim() -> PathBuf {
    let agent = PathBuf::from(env!("CARGO_BIN_EXE_vmrun-agent"));
    let shim = agent.with_file_name("vmrun-shim");
    if !shim.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "vmrun-shim"])
            .status()
            .expect("running cargo build -p vmrun-shim");
        assert!(status.success(), "cargo build -p vmrun-shim failed");
    }
    shim
}

/// A busybox root file system in `dir`.
pub fn busybox_layer(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
    }
    for d in ["etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

/// A docker-like OCI spec running `args`, in a cgroup named after `unique` and `id` (on
/// cgroup v1 a zombie nobody reaps keeps a cgroup busy, so names are never reused).
pub fn spec(unique: &str, id: &str, args: &[&str], tty: bool) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": tty,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs"},
        "hostname": id,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "cgroupsPath": format!("/vmrun-agent-test/{unique}-{id}"),
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]
        }
    })
}

/// An exec's OCI process running `args`.
pub fn process(args: &[&str]) -> Value {
    json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/bin"],
        "cwd": "/"
    })
}

/// `vmrun-agent --listen unix:...` in a temporary directory; killed on drop.
pub struct HostAgent {
    pub dir: tempfile::TempDir,
    pub child: Child,
}

impl HostAgent {
    pub fn start() -> HostAgent {
        let dir = tempfile::Builder::new()
            .prefix("agt")
            .tempdir_in("/tmp")
            .unwrap();
        if Path::new(BUSYBOX).exists() {
            busybox_layer(&dir.path().join("layer"));
        }
        let sock = dir.path().join("agent.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_vmrun-agent"))
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--shim")
            .arg(shim_binary())
            .env("VMRUN_LOG", "debug")
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "the agent did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        HostAgent { dir, child }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// A name unique to this agent (its directory's).
    pub fn unique(&self) -> String {
        self.dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn layer(&self) -> PathBuf {
        self.dir.path().join("layer")
    }

    /// A raw connection, no hello yet.
    pub fn raw(&self) -> UnixStream {
        let s = UnixStream::connect(self.socket()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }

    /// A connection after a successful hello.
    pub fn conn(&self) -> Conn {
        let mut s = self.raw();
        write_frame(&mut s, &Hello::new("test", None)).unwrap();
        let reply: HelloReply = read_frame(&mut s).unwrap();
        assert!(matches!(reply, HelloReply::Welcome { .. }), "{reply:?}");
        Conn { s, next: 1 }
    }

    /// A stream connection to `target`.
    pub fn stream(&self, target: StreamTarget) -> Result<UnixStream, AgentError> {
        let mut c = self.conn();
        match c.call(Op::OpenStream { target }) {
            Ok(Reply::StreamReady) => Ok(c.s),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        }
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Shims outlive their agent by design (setsid); end the ones this test left.
        for pid in pids_mentioning(self.dir.path()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Pids of processes whose command line mentions `needle`.
fn pids_mentioning(needle: &Path) -> Vec<i32> {
    let needle = needle.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .collect()
}

/// A control connection.
pub struct Conn {
    pub s: UnixStream,
    next: u64,
}

impl Conn {
    /// One request, one reply (no other requests in flight).
    pub fn call(&mut self, op: Op) -> Result<Reply, AgentError> {
        let id = self.next;
        self.next += 1;
        write_frame(&mut self.s, &Request { id, op }).unwrap();
        let resp: Response = read_frame(&mut self.s).unwrap();
        assert_eq!(resp.id, Some(id));
        resp.result
    }

    pub fn ok(&mut self, op: Op) -> Reply {
        let what = format!("{op:?}");
        self.call(op).unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

/// Reads a multiplexed (non-TTY) attach stream to its end: (stdout, stderr).
pub fn demux(mut s: impl Read) -> (String, String) {
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut rest = &all[..];
    while rest.len() >= 8 {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let body = &rest[8..8 + len];
        match rest[0] {
            1 => out.extend_from_slice(body),
            2 => err.extend_from_slice(body),
            _ => {}
        }
        rest = &rest[8 + len..];
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// Writes `data` and closes the writing side.
pub fn send_stdin(s: &mut UnixStream, data: &[u8]) {
    s.write_all(data).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
}
