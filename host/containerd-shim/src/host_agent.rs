//! The native sandbox: vmrun's guest agent run as a process on this host (this binary
//! re-executed as [`AGENT_ARG`]), serving the agent protocol on a Unix socket. Its
//! containers are native ones made by the runtime library through `vmrun-shim`, exactly
//! as in a guest, over containerd's snapshot (`<bundle>/rootfs`) with a writable layer
//! of their own beside the bundle (`<bundle>/vmrun-rw`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use serde_json::Value;
use vmrun_agent_client::{AgentClient, Connector};
use vmrun_agent_protocol::RootfsSpec;

/// The first argument that makes this binary the agent: `AGENT_ARG SOCKET STATE SHIM`.
pub const AGENT_ARG: &str = "--vmrun-host-agent";
/// Where the agents' sockets and state live (one directory per shim).
const DIR: &str = "/run/vmrun-shim";
/// How long the agent may take to serve.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the agent gets to end on SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The agent on this host.
pub struct HostAgent {
    agent: AgentClient,
    child: tokio::sync::Mutex<tokio::process::Child>,
    dir: PathBuf,
}

impl HostAgent {
    /// Starts the agent and connects to it.
    pub async fn start() -> anyhow::Result<HostAgent> {
        let dir = Path::new(DIR).join(format!("native-{}", std::process::id()));
        // Left by a shim that had this pid and died: its socket would stop the agent's bind.
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let socket = dir.join("agent.sock");
        let shim = shim_binary()?;
        let exe = std::env::current_exe().context("finding this binary")?;
        let mut child = tokio::process::Command::new(exe)
            .arg(AGENT_ARG)
            .arg(&socket)
            .arg(dir.join("state"))
            .arg(&shim)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the agent on the host")?;
        let deadline = Instant::now() + START_TIMEOUT;
        let agent = loop {
            if let Some(status) = child.try_wait().context("watching the agent")? {
                return Err(anyhow!("the agent on the host exited at start: {status}"));
            }
            if socket.exists() {
                let connector = Connector::Unix(socket.clone());
                match AgentClient::connect(connector, "containerd-shim-vmrun").await {
                    Ok(a) => break a,
                    Err(e) if Instant::now() > deadline => {
                        return Err(anyhow!("connecting to the agent on the host: {e}"))
                    }
                    Err(_) => {}
                }
            } else if Instant::now() > deadline {
                return Err(anyhow!(
                    "the agent on the host did not listen within {START_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        log::info!("native sandbox: agent pid {:?}", child.id());
        Ok(HostAgent {
            agent,
            child: tokio::sync::Mutex::new(child),
            dir,
        })
    }

    /// The agent.
    pub fn agent(&self) -> &AgentClient {
        &self.agent
    }

    /// Creates native container `id` from containerd's `spec` over `rootfs`; returns its
    /// monitor's pid.
    pub async fn create_container(
        &self,
        id: &str,
        spec: Value,
        rootfs: &Path,
        tty: bool,
        open_stdin: bool,
    ) -> anyhow::Result<i32> {
        let writable = rootfs
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent", rootfs.display()))?
            .join("vmrun-rw");
        let rootfs = RootfsSpec {
            layers: vec![rootfs.to_owned()],
            writable: Some(writable),
        };
        let req = crate::runner::task_request(id, spec, rootfs, tty, open_stdin);
        tokio::time::timeout(Duration::from_secs(60), self.agent.create(req))
            .await
            .map_err(|_| anyhow!("creating the container: the agent did not answer"))?
            .map_err(|e| anyhow!("creating the container: {e}"))
    }

    /// Ends the agent (SIGTERM, SIGKILL after a grace) and removes its directory.
    pub async fn shutdown(&self) {
        let mut child = self.child.lock().await;
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(STOP_GRACE, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            log::warn!("removing {}: {e}", self.dir.display());
        }
    }
}

/// `vmrun-shim`: `VMRUN_SHIM_BINARY`, else next to this binary, else on `PATH`.
fn shim_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("VMRUN_SHIM_BINARY") {
        return Ok(PathBuf::from(p));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("vmrun-shim")));
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("vmrun-shim"))
                .collect()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("vmrun-shim not found next to this binary or on PATH"))
}

/// The agent mode of this binary: `args` are what follows [`AGENT_ARG`].
pub fn run_agent(args: &[OsString]) -> anyhow::Result<()> {
    let [socket, state, shim] = args else {
        return Err(anyhow!("usage: {AGENT_ARG} SOCKET STATE_DIR SHIM"));
    };
    vmrun_agent::run(vmrun_agent::Config {
        listen: vmrun_agent::Listen::Unix(PathBuf::from(socket)),
        state_dir: PathBuf::from(state),
        shim: PathBuf::from(shim),
        init: false,
    })
    .context("running the agent")
}
