//! `vmrun-agent`: PID 1 of a vmrun microVM. It sets the guest up (a tmpfs root, `/proc`,
//! `/sys`, `/dev`, `/dev/pts`, `/dev/shm`, `/run`, `/tmp`, cgroup2 with every controller
//! delegated, `lo` up), reaps orphans, and serves the agent protocol
//! (`vmrun-agent-protocol`) on vsock port 1024: containers, execs, streams, disks, clock,
//! shutdown. With `--listen unix:PATH` (and not PID 1) it runs on a host for tests and does
//! none of the PID-1 set-up and never touches the clock.
//!
//! # Containers through `vmrun-shim`
//! Every container and every exec is watched by its own `vmrun-shim` process, the same
//! monitor the daemon uses natively (it lives in `guest-agent/shim` and is in the
//! initramfs at `/bin/vmrun-shim`). The agent writes the shim's config, spawns it, reads its
//! ready line, and then speaks the shim's JSON-line protocol on its Unix socket: `start`,
//! `wait`, `resize`, and `attach`, whose connection the agent splices onto the host's vsock
//! stream. So stdio relaying, the json-file log, TTYs and exit records exist once in the
//! tree, and each container's waits and pipes live in a separate small process.
//!
//! # Reaping
//! As PID 1 the agent inherits every orphan. One reaper ([`reaper`]) is the only caller of
//! `waitpid` in the agent: it reaps everything on `SIGCHLD` and hands the statuses of the
//! shims it spawned to their waiters. The container processes are the shims' children, and
//! each shim waits for its own child, so no exit status is ever stolen.
//!
//! # Modules
//! [`init`] (boot set-up), [`reaper`], [`clock`], [`power`] (shutdown), [`mounts`] (layer
//! and data disks), [`procs`] (the process table), [`bundle`] (the OCI bundle), [`spawn`] (running a shim),
//! [`shim_client`], [`streams`]
//! (attach and log streams), [`forward`] (published ports' connections), [`data_tar`] (a writable layer as a tar), [`container_files`] (`docker cp` and `docker export`), [`netns`] (containers' network
//! namespaces), [`listeners`] (ports containers listen on), [`inspect`] (stats, top, logs), [`server`] (connections).

pub mod bundle;
pub mod clock;
pub mod container_files;
pub mod data_files;
pub mod data_tar;
pub mod forward;
pub mod guest_net;
pub mod init;
pub mod inspect;
pub mod listeners;
pub mod loop_device;
pub mod mounts;
pub mod netns;
pub mod power;
pub mod procs;
pub mod reaper;
pub mod server;
pub mod share;
pub mod shim_client;
pub mod spawn;
pub mod streams;
pub mod tap;
pub mod user_net;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use vmrun_agent_protocol::{AgentError, ErrorKind, Op, Reply, PROTOCOL_VERSION};

pub use server::Listen;

/// Where the agent keeps its state in the guest.
pub const DEFAULT_STATE_DIR: &str = "/run/vmrun/agent";
/// Where the initramfs puts the shim.
pub const GUEST_SHIM_PATH: &str = "/bin/vmrun-shim";

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: Listen,
    /// State directory (containers, runtime state, logs by default).
    pub state_dir: PathBuf,
    /// The `vmrun-shim` binary.
    pub shim: PathBuf,
    /// Do the PID-1 work: set up the system, own the clock, end the VM on shutdown.
    pub init: bool,
}

/// The running agent, shared by connections.
pub struct Agent {
    /// Containers and execs.
    pub procs: procs::Procs,
    /// Whether hellos and `SetTime` may move the clock (true only as PID 1).
    pub owns_clock: bool,
    /// TCP forwards waiting for their return connections.
    pub forward_returns: forward::PendingReturns,
    init: bool,
    stop: watch::Sender<bool>,
}

/// `vmrun-agent <version>`.
pub fn agent_version() -> String {
    format!("vmrun-agent {}", env!("CARGO_PKG_VERSION"))
}

/// `uname -r`.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// This process's resident memory (`VmRSS` in `/proc/self/status`), KiB; 0 if unknown.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Why the agent stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The PID-1 set-up failed.
    #[error("setting up the guest: {0}")]
    Init(#[from] init::InitError),
    /// A step that needs the operating system failed.
    #[error("{context}: {source}")]
    Io {
        /// What was done.
        context: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn run_io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let context = context.into();
    move |source| RunError::Io { context, source }
}

/// Sets up (as PID 1) and serves until a shutdown.
pub fn run(config: Config) -> Result<(), RunError> {
    if config.init {
        init::setup()?;
    }
    std::fs::create_dir_all(&config.state_dir)
        .map_err(run_io(format!("creating {}", config.state_dir.display())))?;
    // One thread: the agent is idle nearly always, and RSS matters in a small VM.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(run_io("starting the event loop"))?;
    rt.block_on(async {
        let reaper = reaper::Reaper::start().map_err(run_io("installing the SIGCHLD reaper"))?;
        let agent = Arc::new(Agent {
            procs: procs::Procs::new(
                procs::Paths {
                    state: config.state_dir.clone(),
                    shim: config.shim.clone(),
                },
                reaper,
            ),
            owns_clock: config.init,
            forward_returns: forward::PendingReturns::default(),
            init: config.init,
            stop: watch::channel(false).0,
        });
        eprintln!("vmrun-agent: ready ({:?})", config.listen);
        server::serve(agent, config.listen.clone())
            .await
            .map_err(run_io(format!("serving on {:?}", config.listen)))
    })
}

impl Agent {
    /// Carries out one control operation.
    pub async fn dispatch(self: &Arc<Self>, op: Op) -> Result<Reply, AgentError> {
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            AgentError::new(ErrorKind::Internal, format!("{what}: {e}"))
        };
        Ok(match op {
            Op::Ping => Reply::Pong,
            Op::Version => Reply::Version {
                protocol: PROTOCOL_VERSION,
                agent: agent_version(),
                kernel_release: kernel_release(),
                agent_rss_kib: rss_kib(),
            },
            Op::SetTime { unix_nanos } => {
                if self.owns_clock {
                    let (adjusted, offset_ms) = clock::sync_to(unix_nanos)
                        .map_err(|e| internal("setting the clock", &e))?;
                    Reply::TimeSet {
                        adjusted,
                        offset_ms,
                    }
                } else {
                    let now =
                        clock::now_unix_nanos().map_err(|e| internal("reading the clock", &e))?;
                    Reply::TimeSet {
                        adjusted: false,
                        offset_ms: (now - unix_nanos) / 1_000_000,
                    }
                }
            }
            Op::Shutdown { action } => {
                let agent = self.clone();
                // Reply first; act a moment later so the reply leaves.
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    if agent.init {
                        let e = power::shutdown(action);
                        tracing::error!("reboot failed: {e}");
                    } else {
                        agent.stop.send_replace(true);
                    }
                });
                Reply::Done
            }
            Op::MountLayer { device, id } => {
                let (path, already) = mounts::mount_layer(&device, &id)?;
                Reply::Mounted { path, already }
            }
            Op::MountDataDisk { device } => {
                let (path, already) = mounts::mount_data_disk(&device)?;
                Reply::Mounted { path, already }
            }
            Op::RemoveData { path } => {
                data_files::remove(&path).await?;
                Reply::Done
            }
            Op::ListData { path } => Reply::Names {
                names: data_files::list(&path).await?,
            },
            Op::RemoveLayer { id } => {
                mounts::unmount_layer(&id)?;
                let image = std::path::Path::new("layers").join(format!("{id}.ext4"));
                data_files::remove(&image).await?;
                Reply::Done
            }
            Op::MakeDataDir { path } => {
                data_files::make_dir(&path).await?;
                Reply::Done
            }
            Op::FillDataDir(req) => Reply::Filled {
                copied: data_files::fill(*req).await?,
            },
            Op::Create(req) => Reply::Created {
                shim_pid: self.procs.create(*req).await?,
            },
            Op::Exec(req) => Reply::Created {
                shim_pid: self.procs.exec(*req).await?,
            },
            Op::Start { id } => Reply::Started {
                pid: self.procs.start(&id).await?,
            },
            Op::Wait { id } => Reply::Exited(self.procs.wait(&id).await?),
            Op::Kill { id, signal } => {
                self.procs.kill(&id, signal)?;
                Reply::Done
            }
            Op::Resize { id, height, width } => {
                self.procs.resize(&id, height, width).await?;
                Reply::Done
            }
            Op::Delete { id, force } => {
                self.procs.delete(&id, force).await?;
                Reply::Done
            }
            Op::Logs { id } => {
                let e = self.procs.container(&id)?;
                Reply::Logs {
                    content: inspect::logs(&e)?,
                }
            }
            Op::Stats { id } => {
                let e = self.procs.container(&id)?;
                Reply::Stats(inspect::stats(&e)?)
            }
            Op::Freeze { id, frozen } => {
                let e = self.procs.container(&id)?;
                inspect::freeze(&e, frozen)?;
                Reply::Done
            }
            Op::UpdateResources { id, resources } => {
                let e = self.procs.container(&id)?;
                inspect::update_resources(&e, resources)?;
                Reply::Done
            }
            Op::ConnectNetwork { id, link } => {
                let pid = self.procs.container_pid(&id)?;
                user_net::connect(pid, link).await?;
                Reply::Done
            }
            Op::DisconnectNetwork { id, host_veth } => {
                // Gone with the container's namespace when it has exited.
                if self.procs.container_pid(&id).is_ok() {
                    user_net::disconnect(host_veth).await?;
                }
                Reply::Done
            }
            Op::WriteHosts { id, hosts } => {
                self.procs.container(&id)?;
                user_net::write_hosts(&self.procs.hosts_file(&id), &hosts)?;
                Reply::Done
            }
            Op::Top { id } => {
                let e = self.procs.container(&id)?;
                Reply::Top {
                    processes: inspect::top(&e)?,
                }
            }
            Op::List => Reply::List {
                entries: self.procs.list()?,
            },
            Op::OpenStream { .. } => {
                return Err(AgentError::new(
                    ErrorKind::BadRequest,
                    "open_stream must be the first request on a new connection",
                ))
            }
        })
    }
}
