//! `AgentClient` against `vmrun-agent --listen unix:` on this host: a TTY container resized
//! while it runs, an exec with stdin, a followed log, list, version refusal.
//! Needs root and `/bin/busybox` for the containers (skips otherwise).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vmrun_agent_client::{AgentClient, ClientError, Connector};
use vmrun_agent_protocol::{CreateContainer, CreateExec, ErrorKind, RootfsSpec, StreamTarget};

/// `target/<profile>/{vmrun-agent,vmrun-shim}`, built with cargo (once) when missing.
fn binaries() -> (PathBuf, PathBuf) {
    static BINS: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    BINS.get_or_init(find_or_build).clone()
}

fn find_or_build() -> (PathBuf, PathBuf) {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let (agent, shim) = (dir.join("vmrun-agent"), dir.join("vmrun-shim"));
    if !agent.is_file() || !shim.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "vmrun-agent", "-p", "vmrun-shim"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cargo build -p vmrun-agent -p vmrun-shim failed");
    }
    (agent, shim)
}

struct HostAgent {
    dir: tempfile::TempDir,
    child: Child,
}

impl HostAgent {
    fn start() -> HostAgent {
        let (agent, shim) = binaries();
        let dir = tempfile::Builder::new()
            .prefix("agc")
            .tempdir_in("/tmp")
            .unwrap();
        let sock = dir.path().join("a.sock");
        let child = Command::new(agent)
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--shim")
            .arg(shim)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "the agent did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        HostAgent { dir, child }
    }

    async fn client(&self) -> AgentClient {
        AgentClient::connect(Connector::Unix(self.dir.path().join("a.sock")), "test")
            .await
            .unwrap()
    }

    fn layer(&self) -> PathBuf {
        let root = self.dir.path().join("layer");
        if root.exists() {
            return root;
        }
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        for a in ["sh", "stty", "cat", "echo", "sleep", "tr"] {
            std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
        }
        for d in ["proc", "dev", "sys", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        root
    }

    fn unique(&self) -> String {
        self.dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into()
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn can_run_containers() -> bool {
    if !nix_is_root() {
        vmrun_test_skip::report(format_args!("needs root (containers)"));
        return false;
    }
    if !Path::new("/bin/busybox").is_file() {
        vmrun_test_skip::report(format_args!(
            "/bin/busybox is missing (apt-get install busybox-static)"
        ));
        return false;
    }
    true
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

fn container(agent: &HostAgent, id: &str, args: &[&str], tty: bool) -> CreateContainer {
    CreateContainer {
        id: id.into(),
        spec: json!({
            "ociVersion": "1.0.2",
            "process": {"terminal": tty, "user": {"uid": 0, "gid": 0}, "args": args,
                        "env": ["PATH=/bin", "TERM=xterm"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}
            ],
            "linux": {
                "cgroupsPath": format!("/vmrun-agent-client-test/{}-{id}", agent.unique()),
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
            }
        }),
        rootfs: RootfsSpec {
            layers: vec![agent.layer()],
            writable: None,
        },
        user: None,
        tty,
        open_stdin: true,
        stdin_once: true,
        console_size: Some([24, 80]),
        log_path: None,
        log_rotation: None,
        etc_files: None,
    }
}

#[tokio::test]
async fn tty_resize_exec_stdin_and_log_follow() {
    if !can_run_containers() {
        return;
    }
    let agent = HostAgent::start();
    let client = agent.client().await;
    client.ping().await.unwrap();

    // A terminal: size set at creation, then resized while the process waits for input.
    client
        .create(container(
            &agent,
            "t1",
            &["sh", "-c", "stty size; read x; stty size"],
            true,
        ))
        .await
        .unwrap();
    let mut tty = client
        .open_stream(StreamTarget::Attach {
            id: "t1".into(),
            stdin: true,
            stdout: true,
            stderr: true,
        })
        .await
        .unwrap();
    let mut logs = client
        .open_stream(StreamTarget::Logs {
            id: "t1".into(),
            follow: true,
        })
        .await
        .unwrap();
    client.start("t1").await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("24 80") {
        let n = tokio::time::timeout(Duration::from_secs(10), tty.read(&mut buf))
            .await
            .expect("no output from the terminal")
            .unwrap();
        assert!(n > 0, "early end: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    client.resize("t1", 30, 100).await.unwrap();
    tty.write_all(b"\n").await.unwrap();
    tty.read_to_end(&mut seen).await.unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("30 100"), "{text:?}");
    assert_eq!(client.wait("t1").await.unwrap().exit_code, 0);
    let mut followed = String::new();
    logs.read_to_string(&mut followed).await.unwrap();
    assert!(followed.contains("30 100"), "{followed}");

    // An exec with stdin in a running container.
    client
        .create(container(&agent, "r1", &["sleep", "300"], false))
        .await
        .unwrap();
    client.start("r1").await.unwrap();
    let mut process = json!({"terminal": false, "user": {"uid": 0, "gid": 0},
                         "args": ["tr", "a-z", "A-Z"], "env": ["PATH=/bin"], "cwd": "/"});
    client
        .exec(CreateExec {
            container_id: "r1".into(),
            exec_id: "x1".into(),
            process: process.take(),
            open_stdin: true,
            console_size: None,
        })
        .await
        .unwrap();
    let mut io = client
        .open_stream(StreamTarget::Attach {
            id: "x1".into(),
            stdin: true,
            stdout: true,
            stderr: true,
        })
        .await
        .unwrap();
    client.start("x1").await.unwrap();
    io.write_all(b"shout\n").await.unwrap();
    io.shutdown().await.unwrap();
    let mut raw = Vec::new();
    io.read_to_end(&mut raw).await.unwrap();
    assert!(raw.len() > 8 && raw[0] == 1, "{raw:?}");
    assert_eq!(&raw[8..], b"SHOUT\n");
    assert_eq!(client.wait("x1").await.unwrap().exit_code, 0);

    // An exec with a terminal of its own, sized at creation.
    client
        .exec(CreateExec {
            container_id: "r1".into(),
            exec_id: "x2".into(),
            process: json!({"terminal": true, "user": {"uid": 0, "gid": 0},
                            "args": ["stty", "size"], "env": ["PATH=/bin"], "cwd": "/"}),
            open_stdin: false,
            console_size: Some([12, 34]),
        })
        .await
        .unwrap();
    let mut term = client
        .open_stream(StreamTarget::Attach {
            id: "x2".into(),
            stdin: false,
            stdout: true,
            stderr: true,
        })
        .await
        .unwrap();
    client.start("x2").await.unwrap();
    let mut out = String::new();
    term.read_to_string(&mut out).await.unwrap();
    assert_eq!(out.trim(), "12 34", "raw terminal output, no framing");
    assert_eq!(client.wait("x2").await.unwrap().exit_code, 0);

    let list = client.list().await.unwrap();
    let r1 = list.iter().find(|e| e.id == "r1").unwrap();
    assert_eq!(r1.status, vmrun_agent_protocol::ProcessStatus::Running);
    assert!(list
        .iter()
        .any(|e| e.id == "x1" && e.container_id.as_deref() == Some("r1")));
    let stats = client.stats("r1").await.unwrap();
    assert!(
        stats.pids_current >= 1 || stats.memory_usage > 0,
        "{stats:?}"
    );
    assert!(client
        .top("r1")
        .await
        .unwrap()
        .iter()
        .any(|p| p.cmd == "sleep 300"));

    client.delete("r1", true).await.unwrap();
    client.delete("t1", false).await.unwrap();
    assert!(client.list().await.unwrap().is_empty());

    match client.wait("r1").await {
        Err(ClientError::Agent(e)) => assert_eq!(e.kind, ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn version_and_clock_on_a_host_agent() {
    let agent = HostAgent::start();
    let client = agent.client().await;
    assert!(
        !client.welcome().clock_adjusted,
        "a host agent never sets the clock"
    );
    let v = client.version().await.unwrap();
    assert_eq!(v.protocol, vmrun_agent_protocol::PROTOCOL_VERSION);
    assert!(v.agent_rss_kib > 0);
    let (adjusted, _) = client.set_time().await.unwrap();
    assert!(!adjusted);
}
