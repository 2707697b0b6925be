//! [`Daemon`]: a private `vmrund` on a temporary directory, and its clients.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cleanup;
use crate::command::{run_with_timeout, CmdOutput};
use crate::env::bin_dir;
use crate::http::{api_request, api_send, try_api_request, ApiResponse, PendingResponse};
use crate::image::busybox_tar;

/// Held (exclusive `flock`) by every running test daemon of a lane (see [`lock_path`]):
/// one test daemon at a time per lane keeps tests that count host-wide things (bridges,
/// processes, mounts, CPU for their timeouts) apart.
pub const GLOBAL_LOCK: &str = "/tmp/vmrun-e2e.lock";
/// Names another lock file than [`GLOBAL_LOCK`]: `tests/run.sh` runs the VM tests in a lane
/// of their own beside the others. Tests of different lanes share nothing fixed: every
/// daemon has its own bridge (subnets chosen under the daemon's host-wide lock), ports
/// are free ones, the reference dockerd runs in the default lane only.
pub const LOCK_ENV: &str = "VMRUN_E2E_LOCK";

/// The lock file of this test process's lane.
pub fn lock_path() -> String {
    std::env::var(LOCK_ENV).unwrap_or_else(|_| GLOBAL_LOCK.to_string())
}
/// Deadline of one client command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of one API request.
pub const API_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon may take to answer `_ping` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Networks every daemon has.
const PREDEFINED_NETWORKS: [&str; 3] = ["bridge", "host", "none"];

/// Template of a daemon's directory: short, since Unix socket paths under it (the
/// runtime's `<exec-root>/runtime/<64-hex id>/start.sock`) must fit in 108 bytes.
pub const DIR_TEMPLATE: &str = "/tmp/vme-XXXXXX";

/// How to start a [`Daemon`].
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Load `busybox:latest` once it is up.
    pub load_busybox: bool,
    /// The exec root, relative to the daemon's directory.
    pub exec_root: String,
    /// Give the daemon its own default bridge, named after its directory
    /// (`vme-XXXXXX`), instead of the host's shared `vmrun0`: daemons on one bridge
    /// hand out the same addresses.
    pub own_bridge: bool,
    /// More `vmrund` arguments (e.g. `--certs-dir DIR`, `--registry-mirror URL`).
    pub extra_args: Vec<String>,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            load_busybox: true,
            exec_root: "run".to_string(),
            own_bridge: true,
            extra_args: Vec::new(),
        }
    }
}

/// A private daemon. Dropping it cleans up everything it made.
pub struct Daemon {
    dir: PathBuf,
    exec_root: PathBuf,
    bridge: Option<String>,
    bin: PathBuf,
    child: Option<Child>,
    extra_args: Vec<String>,
    _lock: Flock<File>,
}

/// Takes this lane's lock ([`lock_path`]; blocks while another test of the lane holds it).
pub fn take_lock() -> Flock<File> {
    let path = lock_path();
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {path}: {e}"));
    Flock::lock(file, FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("locking {path}: {e}"))
}

impl Daemon {
    /// Starts a daemon and loads `busybox:latest` into it.
    pub fn start() -> Daemon {
        Daemon::start_with(DaemonOptions::default())
    }

    /// Starts a daemon with no images.
    pub fn start_empty() -> Daemon {
        Daemon::start_with(DaemonOptions {
            load_busybox: false,
            ..DaemonOptions::default()
        })
    }

    /// Starts a daemon as `opts` say.
    pub fn start_with(opts: DaemonOptions) -> Daemon {
        let bin = bin_dir();
        let tar = opts.load_busybox.then(busybox_tar);
        let lock = take_lock();
        let dir = nix::unistd::mkdtemp(DIR_TEMPLATE).expect("mkdtemp under /tmp");
        let bridge = opts.own_bridge.then(|| {
            dir.file_name()
                .expect("mkdtemp gives a name")
                .to_string_lossy()
                .into_owned()
        });
        let mut daemon = Daemon {
            exec_root: dir.join(&opts.exec_root),
            bridge,
            dir,
            bin,
            child: None,
            extra_args: opts.extra_args,
            _lock: lock,
        };
        daemon.spawn();
        if let Some(tar) = tar {
            daemon
                .vmrun(&["load", "-i", tar.to_str().expect("utf-8 path")])
                .ok();
        }
        daemon
    }

    /// The temporary directory everything lives under.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("d.sock")
    }

    /// `unix://<socket>`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The daemon's persistent state.
    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The daemon's runtime state.
    pub fn exec_root(&self) -> PathBuf {
        self.exec_root.clone()
    }

    /// The daemon's log (stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("vmrund.log")
    }

    /// The default network's bridge device, when the daemon has its own.
    pub fn bridge(&self) -> Option<&str> {
        self.bridge.as_deref()
    }

    /// Pid of the running daemon.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("creating the daemon log");
        let mut cmd = Command::new(self.bin.join("vmrund"));
        if let Some(bridge) = &self.bridge {
            cmd.arg("--bridge").arg(bridge);
        }
        cmd.args(&self.extra_args);
        let child = cmd
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.exec_root())
            .arg("--shim")
            .arg(self.bin.join("vmrun-shim"))
            // VMRUN_TEST_DAEMON_LOG: another level for the daemons of a test run.
            .env(
                "VMRUN_LOG",
                std::env::var("VMRUN_TEST_DAEMON_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting vmrund: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("vmrund exited at start ({status}):\n{}", self.log_tail(40));
            }
            if self.socket().exists() {
                let ping = try_api_request(
                    &self.socket(),
                    "GET",
                    "/_ping",
                    None,
                    Duration::from_secs(2),
                );
                if matches!(ping, Ok(ref r) if r.status == 200) {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "vmrund did not answer _ping in {START_TIMEOUT:?}:\n{}",
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last `lines` lines of the daemon log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Kills the daemon with SIGKILL (its containers keep running under their shims).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the daemon with SIGTERM and waits for it (SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Starts a new daemon on the same roots (after [`Daemon::kill9`] or [`Daemon::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the daemon before restarting it");
        self.spawn();
    }

    /// Stops the daemon and starts it again on the same roots with `extra_args` instead
    /// of the ones it had.
    pub fn restart_with(&mut self, extra_args: &[&str]) {
        self.stop();
        self.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        self.spawn();
    }

    /// `vmrun -H <socket>` with `args`, not run yet. The environment points an
    /// auto-started daemon (should ours be gone) at our directory, never at the host's.
    pub fn vmrun_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin.join("vmrun"));
        cmd.arg("-H").arg(self.host()).args(args);
        cmd.env("VMRUN_DATA_ROOT", self.data_root())
            .env("VMRUN_EXEC_ROOT", self.exec_root())
            .env("VMRUN_DAEMON_LOG", self.dir.join("autostart.log"))
            .env_remove("VMRUN_HOST");
        cmd
    }

    /// Runs `vmrun -H <socket> args...` with a deadline.
    pub fn vmrun(&self, args: &[&str]) -> CmdOutput {
        run_with_timeout(self.vmrun_cmd(args), None, COMMAND_TIMEOUT)
    }

    /// Runs `vmrun` with `stdin` as its input.
    pub fn vmrun_stdin(&self, args: &[&str], stdin: &[u8]) -> CmdOutput {
        run_with_timeout(self.vmrun_cmd(args), Some(stdin), COMMAND_TIMEOUT)
    }

    /// `docker -H unix://<socket>` with `args`, not run yet, with a private config dir.
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("-H").arg(self.host()).args(args);
        cmd.env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT");
        cmd
    }

    /// Runs `docker -H unix://<socket> args...` with a deadline.
    pub fn docker(&self, args: &[&str]) -> CmdOutput {
        run_with_timeout(self.docker_cmd(args), None, COMMAND_TIMEOUT)
    }

    /// Runs `docker` with `stdin` as its input.
    pub fn docker_stdin(&self, args: &[&str], stdin: &[u8]) -> CmdOutput {
        run_with_timeout(self.docker_cmd(args), Some(stdin), COMMAND_TIMEOUT)
    }

    /// One raw HTTP request; `body` is sent as JSON.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> ApiResponse {
        api_request(
            &self.socket(),
            method,
            path,
            body.map(str::as_bytes),
            API_TIMEOUT,
        )
    }

    /// Sends a request and returns before reading the response (long polls).
    pub fn api_send(&self, method: &str, path: &str, body: Option<&str>) -> PendingResponse {
        api_send(
            &self.socket(),
            method,
            path,
            body.map(str::as_bytes),
            API_TIMEOUT,
        )
    }

    /// `GET /containers/<name>/json`, panicking unless it is 200.
    #[track_caller]
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let r = self.api("GET", &format!("/containers/{name}/json"), None);
        assert_eq!(r.status, 200, "inspect {name}: {}", r.text());
        r.json()
    }

    /// `State.Status` of a container (`running`, `exited`, ...), or `None` if it does not exist.
    pub fn state(&self, name: &str) -> Option<String> {
        let r = self.api("GET", &format!("/containers/{name}/json"), None);
        if r.status != 200 {
            return None;
        }
        r.json()["State"]["Status"].as_str().map(String::from)
    }

    /// Waits until the container's `State.Status` is `status`.
    #[track_caller]
    pub fn wait_state(&self, name: &str, status: &str, timeout: Duration) {
        crate::wait_for(timeout, &format!("{name} to be {status}"), || {
            (self.state(name).as_deref() == Some(status)).then_some(())
        })
    }

    /// Removes every container and user network through the API.
    fn remove_everything(&self) {
        let quick = Duration::from_secs(10);
        let list = try_api_request(&self.socket(), "GET", "/containers/json?all=1", None, quick);
        if let Ok(list) = list {
            if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(&list.body) {
                for item in items {
                    if let Some(id) = item["Id"].as_str() {
                        let path = format!("/containers/{id}?force=1&v=1");
                        let _ = try_api_request(&self.socket(), "DELETE", &path, None, quick);
                    }
                }
            }
        }
        let nets = try_api_request(&self.socket(), "GET", "/networks", None, quick);
        if let Ok(nets) = nets {
            if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(&nets.body) {
                for item in items {
                    let name = item["Name"].as_str().unwrap_or_default();
                    if PREDEFINED_NETWORKS.contains(&name) {
                        continue;
                    }
                    if let Some(id) = item["Id"].as_str() {
                        let path = format!("/networks/{id}");
                        let _ = try_api_request(&self.socket(), "DELETE", &path, None, quick);
                    }
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- vmrund log ({}) ---\n{}\n---",
                self.log_path().display(),
                self.log_tail(60)
            );
        }
        if self.child.is_some() {
            self.remove_everything();
        }
        self.stop();
        let needle = self.dir.to_string_lossy().into_owned();
        cleanup::kill_all(&cleanup::pids_mentioning(&needle));
        cleanup::kill_container_cgroups(&cleanup::container_ids(&self.data_root()));
        cleanup::unmount_under(&self.dir);
        if let Some(bridge) = &self.bridge {
            cleanup::remove_bridge(bridge);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
