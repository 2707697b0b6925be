//! A [`ContainerBackend`] of in-memory processes whose exits the test controls (as youki
//! keeps a fake cgroup manager): the engine's logic, tested without root.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::io::DuplexStream;
use tokio::sync::watch;
use vmrun_daemon::backend::{
    AttachIo, AttachOptions, BackendError, ContainerBackend, ContainerFiles, ContainerSpec,
    CreatedContainer, ExecSpec, ExitStatus, NetworkEndpoint, ProcessHandle, PublishedPort,
    Reconnected, ResourceStats,
};

/// One fake process: runs from `start` until the test (or a signal) ends it.
pub struct FakeProcess {
    pub pid: i32,
    started: AtomicBool,
    exit: watch::Sender<Option<ExitStatus>>,
    /// The far ends of attached streams: what a test writes there, the client reads.
    pub attached: Mutex<Vec<DuplexStream>>,
    pub size: Mutex<Option<(u16, u16)>>,
    fail_start: Option<BackendError>,
    /// Set by [`FakeProcess::lose`]: `wait` fails with it, as when a VM dies.
    lost: Mutex<Option<String>>,
    /// Ends by itself with this code as soon as it starts (health-check execs).
    auto_exit: Mutex<Option<i32>>,
}

impl FakeProcess {
    fn new(pid: i32, fail_start: Option<BackendError>) -> Arc<Self> {
        Arc::new(FakeProcess {
            pid,
            started: AtomicBool::new(false),
            exit: watch::channel(None).0,
            attached: Mutex::new(Vec::new()),
            size: Mutex::new(None),
            fail_start,
            lost: Mutex::new(None),
            auto_exit: Mutex::new(None),
        })
    }

    /// End the process without an exit status: `wait` fails with `why` (a monitor or a
    /// VM that died).
    pub fn lose(&self, why: &str) {
        *self.lost.lock().unwrap() = Some(why.to_string());
        self.exit(255);
    }

    /// End the process with `code`.
    pub fn exit(&self, code: i32) {
        self.exit.send_replace(Some(ExitStatus {
            exit_code: code,
            oom_killed: false,
            finished_at: vmrun_shim::now_rfc3339(),
        }));
    }

    /// Whether it has ended.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.exit.borrow().clone()
    }

    pub fn started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ProcessHandle for FakeProcess {
    async fn attach(&self, _opts: AttachOptions) -> Result<Box<dyn AttachIo>, BackendError> {
        let (near, far) = tokio::io::duplex(4096);
        self.attached.lock().unwrap().push(far);
        Ok(Box::new(near))
    }

    async fn start(&self) -> Result<i32, BackendError> {
        if let Some(e) = self.fail_start.clone() {
            self.exit(127);
            return Err(e);
        }
        self.started.store(true, Ordering::SeqCst);
        if let Some(code) = *self.auto_exit.lock().unwrap() {
            self.attached.lock().unwrap().clear();
            self.exit(code);
        }
        Ok(self.pid)
    }

    async fn wait(&self) -> Result<ExitStatus, BackendError> {
        let mut rx = self.exit.subscribe();
        let status = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| BackendError::Gone("the fake process vanished".into()))?;
        if let Some(why) = self.lost.lock().unwrap().clone() {
            return Err(BackendError::Gone(why));
        }
        status
            .clone()
            .ok_or_else(|| BackendError::Gone("no exit status".into()))
    }

    async fn resize(&self, height: u16, width: u16) -> Result<(), BackendError> {
        *self.size.lock().unwrap() = Some((height, width));
        Ok(())
    }
}

#[derive(Default)]
struct State {
    inits: HashMap<String, Arc<FakeProcess>>,
    execs: HashMap<String, Arc<FakeProcess>>,
    specs: HashMap<String, ContainerSpec>,
    signals: Vec<(String, i32)>,
    ignored: HashSet<(String, i32)>,
    fail_create: Option<BackendError>,
    fail_start: Option<BackendError>,
    released: Vec<String>,
    removed: Vec<String>,
    /// Automatic forwarding of `-P` containers: what the test says is forwarded.
    auto_ports: HashMap<String, watch::Sender<Vec<PublishedPort>>>,
}

/// The fake backend. Processes outlive an engine, as shims outlive a daemon.
pub struct FakeBackend {
    root: PathBuf,
    next_pid: AtomicI32,
    state: Mutex<State>,
}

impl FakeBackend {
    pub fn new(root: &Path) -> Arc<Self> {
        Arc::new(FakeBackend {
            root: root.to_path_buf(),
            next_pid: AtomicI32::new(1000),
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// The current init of container `id`.
    pub fn init(&self, id: &str) -> Arc<FakeProcess> {
        self.state()
            .inits
            .get(id)
            .cloned()
            .expect("a created container")
    }

    /// The process of exec `id`.
    pub fn exec(&self, id: &str) -> Arc<FakeProcess> {
        self.state().execs.get(id).cloned().expect("a created exec")
    }

    /// What the engine last told the backend about container `id`.
    pub fn spec(&self, id: &str) -> ContainerSpec {
        self.state()
            .specs
            .get(id)
            .cloned()
            .expect("a created container")
    }

    /// Signals sent to container `id`, in order.
    pub fn signals(&self, id: &str) -> Vec<i32> {
        let state = self.state();
        state
            .signals
            .iter()
            .filter(|(c, _)| c == id)
            .map(|(_, s)| *s)
            .collect()
    }

    /// Container `id` survives `signal`.
    pub fn ignore(&self, id: &str, signal: i32) {
        self.state().ignored.insert((id.to_string(), signal));
    }

    /// The next create fails with `e`.
    pub fn fail_next_create(&self, e: BackendError) {
        self.state().fail_create = Some(e);
    }

    /// The next started process fails to start with `e`.
    pub fn fail_next_start(&self, e: BackendError) {
        self.state().fail_start = Some(e);
    }

    /// The process of container `id` disappears without an exit record.
    pub fn lose(&self, id: &str) {
        self.state().inits.remove(id);
    }

    pub fn released(&self, id: &str) -> usize {
        self.state().released.iter().filter(|c| *c == id).count()
    }

    /// Says that the backend now forwards `ports` of `-P` container `id` by itself
    /// (false: the container's current run does not forward automatically).
    pub fn forward_automatically(&self, id: &str, ports: Vec<PublishedPort>) -> bool {
        self.state()
            .auto_ports
            .get(id)
            .is_some_and(|tx| tx.send(ports).is_ok())
    }

    pub fn removed(&self, id: &str) -> bool {
        self.state().removed.iter().any(|c| c == id)
    }

    fn process(&self) -> Arc<FakeProcess> {
        let fail = self.state().fail_start.take();
        FakeProcess::new(self.next_pid.fetch_add(1, Ordering::SeqCst), fail)
    }
}

#[async_trait]
impl ContainerBackend for FakeBackend {
    async fn create(&self, c: &ContainerSpec) -> Result<CreatedContainer, BackendError> {
        if let Some(e) = self.state().fail_create.take() {
            return Err(e);
        }
        let process = self.process();
        let ports = c
            .ports
            .iter()
            .map(|p| PublishedPort {
                host_ip: p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into()),
                host_port: p
                    .host_port
                    .as_deref()
                    .and_then(|h| h.parse().ok())
                    .unwrap_or(40000),
                container_port: p.container_port,
                proto: p.proto,
            })
            .collect();
        let mut state = self.state();
        state.inits.insert(c.id.clone(), process.clone());
        state.specs.insert(c.id.clone(), c.clone());
        let auto_ports = c.publish_all.then(|| {
            let (tx, rx) = watch::channel(Vec::new());
            state.auto_ports.insert(c.id.clone(), tx);
            rx
        });
        Ok(CreatedContainer {
            process,
            monitor_pid: 0,
            endpoint: Some(NetworkEndpoint {
                network: c.network.mode.clone(),
                ip: "10.88.0.2".into(),
                prefix_len: 24,
                gateway: "10.88.0.1".into(),
                ..Default::default()
            }),
            ports,
            auto_ports,
        })
    }

    async fn create_exec(
        &self,
        _c: &ContainerSpec,
        spec: &ExecSpec,
    ) -> Result<Arc<dyn ProcessHandle>, BackendError> {
        if spec.cmd.first().map(String::as_str) == Some("missing") {
            return Err(BackendError::NotFound(
                "exec: \"missing\": executable file not found in $PATH".into(),
            ));
        }
        let process = self.process();
        // `healthy-check` and `sick-check` end at once, 0 and 1: health checks.
        *process.auto_exit.lock().unwrap() = match spec.cmd.first().map(String::as_str) {
            Some("healthy-check") => Some(0),
            Some("sick-check") => Some(1),
            _ => None,
        };
        self.state().execs.insert(spec.id.clone(), process.clone());
        Ok(process)
    }

    async fn reconnect(&self, c: &ContainerSpec) -> Result<Reconnected, BackendError> {
        Ok(match self.state().inits.get(&c.id) {
            None => Reconnected::Lost,
            Some(p) => match p.exited() {
                Some(status) => Reconnected::Exited(status),
                None => Reconnected::Running(p.clone()),
            },
        })
    }

    async fn release(&self, c: &ContainerSpec) {
        self.state().released.push(c.id.clone());
    }

    async fn remove(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        self.state().removed.push(c.id.clone());
        Ok(())
    }

    async fn kill(&self, c: &ContainerSpec, signal: i32) -> Result<(), BackendError> {
        let mut state = self.state();
        let process = state
            .inits
            .get(&c.id)
            .filter(|p| p.exited().is_none())
            .cloned()
            .ok_or_else(|| BackendError::Gone(format!("container {} is not running", c.id)))?;
        state.signals.push((c.id.clone(), signal));
        if !state.ignored.contains(&(c.id.clone(), signal)) {
            process.exit(128 + signal);
        }
        Ok(())
    }

    async fn stats(&self, c: &ContainerSpec) -> Result<ResourceStats, BackendError> {
        Ok(ResourceStats {
            memory_usage: 1 << 20,
            memory_limit: c.resources.memory.map(|m| m as u64),
            cpu_usage_ns: 5_000,
            pids_current: 1,
            ..Default::default()
        })
    }

    async fn pids(&self, c: &ContainerSpec) -> Result<Vec<i32>, BackendError> {
        Ok(vec![c.pid])
    }

    fn files(&self, c: &ContainerSpec) -> ContainerFiles {
        let dir = self.root.join(&c.id);
        ContainerFiles {
            log: dir.join("log.json"),
            writable_layer: Some(dir.join("diff")),
            ..Default::default()
        }
    }
}
