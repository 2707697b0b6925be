//! The agent's process table: containers and execs, each watched by its own `vmrun-shim`
//! process, and the operations on them.
//!
//! Files, under the state directory:
//! `containers/<id>/{shim.json,shim.sock,exit.json,shim.log,<id>-json.log,bundle/,rw/}` and
//! `execs/<exec id>/{shim.json,shim.sock,exit.json,shim.log}`; the runtime's own state is
//! in `runtime/`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use vmrun_agent_protocol::{
    valid_id, AgentError, CreateContainer, CreateExec, ErrorKind, ExitInfo, ListEntry,
    ProcessStatus,
};
use vmrun_shim::{OverlayRootfs, ShimConfig, ShimMode};

use crate::reaper::{ExitWatch, Reaper};
use crate::shim_client;

/// How long a shim gets to clean up and exit once its process has ended.
const SHIM_EXIT_GRACE: Duration = Duration::from_secs(10);

fn err(kind: ErrorKind, message: impl Into<String>) -> AgentError {
    AgentError::new(kind, message)
}

fn internal(what: impl std::fmt::Display, e: impl std::fmt::Display) -> AgentError {
    err(ErrorKind::Internal, format!("{what}: {e}"))
}

/// Container or exec.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A container.
    Container {
        /// cgroup path (relative to the hierarchy root).
        cgroups_path: PathBuf,
        /// json-file log.
        log_path: PathBuf,
        /// The bundle's rootfs mount point.
        rootfs: PathBuf,
    },
    /// An exec in `container`.
    Exec {
        /// The container id.
        container: String,
    },
}

/// One watched process.
pub struct Entry {
    /// Container or exec id.
    pub id: String,
    /// What it is.
    pub kind: Kind,
    dir: PathBuf,
    socket: PathBuf,
    exit_file: PathBuf,
    shim_exit: ExitWatch,
    pid: Mutex<Option<i32>>,
    exit: Mutex<Option<ExitInfo>>,
    tty: bool,
}

impl Entry {
    /// The shim's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Pid once started.
    pub fn pid(&self) -> Option<i32> {
        self.pid.lock().ok().and_then(|p| *p)
    }

    /// Whether the process has ended (or its shim has).
    pub fn exited(&self) -> bool {
        self.exit.lock().is_ok_and(|e| e.is_some())
            || self.exit_file.exists()
            || self.shim_exit.get().is_some()
    }

    fn status(&self) -> ProcessStatus {
        match (self.pid(), self.exited()) {
            (_, true) => ProcessStatus::Exited,
            (Some(_), false) => ProcessStatus::Running,
            (None, false) => ProcessStatus::Created,
        }
    }

    fn read_exit_file(&self) -> Option<ExitInfo> {
        let raw = std::fs::read(&self.exit_file).ok()?;
        let s: vmrun_shim::ExitStatus = serde_json::from_slice(&raw).ok()?;
        Some(ExitInfo {
            exit_code: s.exit_code,
            oom_killed: s.oom_killed,
            finished_at: s.finished_at,
        })
    }
}

/// Where the agent keeps its files and finds the shim.
#[derive(Debug, Clone)]
pub struct Paths {
    /// State directory.
    pub state: PathBuf,
    /// The `vmrun-shim` binary.
    pub shim: PathBuf,
}

#[derive(Default)]
struct Table {
    entries: HashMap<String, Arc<Entry>>,
    /// Ids being created (not yet in `entries`).
    reserved: HashSet<String>,
}

/// The process table.
pub struct Procs {
    paths: Paths,
    reaper: Reaper,
    table: Mutex<Table>,
}

/// Removes a reservation when a create ends, successfully or not.
struct Reservation<'a> {
    procs: &'a Procs,
    id: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Ok(mut t) = self.procs.table.lock() {
            t.reserved.remove(&self.id);
        }
    }
}

impl Procs {
    /// An empty table.
    pub fn new(paths: Paths, reaper: Reaper) -> Self {
        Procs {
            paths,
            reaper,
            table: Mutex::new(Table::default()),
        }
    }

    fn runtime_root(&self) -> PathBuf {
        self.paths.state.join("runtime")
    }

    fn table(&self) -> Result<std::sync::MutexGuard<'_, Table>, AgentError> {
        self.table
            .lock()
            .map_err(|_| err(ErrorKind::Internal, "process table poisoned"))
    }

    /// The entry for `id`.
    pub fn get(&self, id: &str) -> Result<Arc<Entry>, AgentError> {
        self.table()?.entries.get(id).cloned().ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                format!("no such container or exec: {id}"),
            )
        })
    }

    /// The container entry for `id` (not an exec).
    pub fn container(&self, id: &str) -> Result<Arc<Entry>, AgentError> {
        let e = self.get(id)?;
        match e.kind {
            Kind::Container { .. } => Ok(e),
            Kind::Exec { .. } => Err(err(
                ErrorKind::NotFound,
                format!("{id} is an exec, not a container"),
            )),
        }
    }

    fn reserve(&self, id: &str) -> Result<Reservation<'_>, AgentError> {
        if !valid_id(id) {
            return Err(err(
                ErrorKind::BadRequest,
                format!("invalid id {id:?}: use 1-128 characters of [A-Za-z0-9_.-]"),
            ));
        }
        let mut t = self.table()?;
        if t.entries.contains_key(id) || !t.reserved.insert(id.to_string()) {
            return Err(err(
                ErrorKind::AlreadyExists,
                format!("the id {id} is already in use"),
            ));
        }
        Ok(Reservation {
            procs: self,
            id: id.to_string(),
        })
    }

    /// Creates a container: bundle, shim, process created and blocked before `exec`.
    pub async fn create(&self, req: CreateContainer) -> Result<i32, AgentError> {
        let _reservation = self.reserve(&req.id)?;
        if req.rootfs.layers.is_empty() {
            return Err(err(
                ErrorKind::BadRequest,
                "rootfs.layers is empty: a container needs at least one layer",
            ));
        }
        // Off the agent's only thread: a layer can be a share, whose FUSE requests this
        // thread relays to the host.
        let layers = req.rootfs.layers.clone();
        let missing = tokio::task::spawn_blocking(move || layers.into_iter().find(|l| !l.is_dir()))
            .await
            .map_err(|e| internal("checking the layers", e))?;
        if let Some(l) = missing {
            return Err(err(
                ErrorKind::NotFound,
                format!("layer directory {} does not exist", l.display()),
            ));
        }
        let dir = self.paths.state.join("containers").join(&req.id);
        let result = self.create_in(&dir, req).await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    async fn create_in(&self, dir: &Path, req: CreateContainer) -> Result<i32, AgentError> {
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(|e| internal("creating the bundle", e))?;
        let (mut spec, cgroups_path) = crate::bundle::prepare_spec(req.spec, &req.id)?;
        if let Some(files) = &req.etc_files {
            crate::bundle::add_etc_files(&mut spec, dir, files)?;
        }
        let spec_bytes = serde_json::to_vec(&spec).map_err(|e| internal("encoding the spec", e))?;
        std::fs::write(bundle.join("config.json"), spec_bytes)
            .map_err(|e| internal("writing config.json", e))?;
        let writable = req.rootfs.writable.unwrap_or_else(|| dir.join("rw"));
        let (upper, work) = (writable.join("upper"), writable.join("work"));
        for d in [&upper, &work] {
            std::fs::create_dir_all(d)
                .map_err(|e| internal(format!("creating {}", d.display()), e))?;
        }
        let log_path = req
            .log_path
            .unwrap_or_else(|| dir.join(format!("{}-json.log", req.id)));
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| internal(format!("creating {}", parent.display()), e))?;
        }
        let config = ShimConfig {
            id: req.id.clone(),
            runtime_root: self.runtime_root(),
            mode: ShimMode::Container {
                bundle: bundle.clone(),
                rootfs: Some(OverlayRootfs {
                    layers: req.rootfs.layers,
                    upper,
                    work,
                    target: rootfs.clone(),
                }),
                user: req.user,
            },
            tty: req.tty,
            open_stdin: req.open_stdin,
            stdin_once: req.stdin_once,
            console_size: req.console_size,
            log_path: Some(log_path.clone()),
            log_rotation: req.log_rotation.map(|r| vmrun_shim::logfile::Rotation {
                max_size: r.max_size,
                max_files: r.max_files,
            }),
            socket: dir.join("shim.sock"),
            exit_file: dir.join("exit.json"),
        };
        let kind = Kind::Container {
            cgroups_path,
            log_path,
            rootfs,
        };
        let shim_pid = self.spawn_shim(dir, config, kind).await?;
        // Its own network namespace starts with `lo` down.
        if let Some(pid) = self.created_init_pid(&req.id) {
            if let Err(e) = crate::netns::in_netns(pid, crate::netns::bring_up_loopback).await {
                tracing::warn!(container = %req.id, "bringing up the container's lo: {e}");
            }
        }
        Ok(shim_pid)
    }

    /// Creates an exec process in a running container.
    pub async fn exec(&self, req: CreateExec) -> Result<i32, AgentError> {
        let container = self.container(&req.container_id)?;
        if container.status() != ProcessStatus::Running {
            return Err(err(
                ErrorKind::Conflict,
                format!("container {} is not running", req.container_id),
            ));
        }
        let _reservation = self.reserve(&req.exec_id)?;
        let process: oci_spec::runtime::Process = serde_json::from_value(req.process)
            .map_err(|e| err(ErrorKind::BadRequest, format!("the exec's process: {e}")))?;
        let dir = self.paths.state.join("execs").join(&req.exec_id);
        std::fs::create_dir_all(&dir).map_err(|e| internal("creating the exec dir", e))?;
        let config = ShimConfig {
            id: req.container_id.clone(),
            runtime_root: self.runtime_root(),
            tty: process.terminal().unwrap_or(false),
            mode: ShimMode::Exec {
                exec_id: req.exec_id.clone(),
                process: Box::new(process),
            },
            open_stdin: req.open_stdin,
            stdin_once: true,
            console_size: req.console_size,
            log_path: None,
            log_rotation: None,
            socket: dir.join("shim.sock"),
            exit_file: dir.join("exit.json"),
        };
        let kind = Kind::Exec {
            container: req.container_id,
        };
        let result = self.spawn_shim(&dir, config, kind).await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    /// Writes the shim's config, runs it, waits for its ready line, records the entry.
    async fn spawn_shim(
        &self,
        dir: &Path,
        config: ShimConfig,
        kind: Kind,
    ) -> Result<i32, AgentError> {
        let (shim_pid, shim_exit) =
            crate::spawn::run_shim(&self.reaper, &self.paths.shim, dir, &config).await?;
        let entry = Arc::new(Entry {
            id: match &config.mode {
                ShimMode::Exec { exec_id, .. } => exec_id.clone(),
                ShimMode::Container { .. } => config.id.clone(),
            },
            kind,
            dir: dir.to_owned(),
            socket: config.socket.clone(),
            exit_file: config.exit_file.clone(),
            shim_exit,
            pid: Mutex::new(None),
            exit: Mutex::new(None),
            tty: config.tty,
        });
        self.table()?.entries.insert(entry.id.clone(), entry);
        Ok(shim_pid)
    }

    /// Lets a created process run.
    pub async fn start(&self, id: &str) -> Result<i32, AgentError> {
        let e = self.get(id)?;
        if e.pid().is_some() || e.exited() {
            return Err(err(
                ErrorKind::Conflict,
                format!("{id} was already started"),
            ));
        }
        let reply = shim_client::call(&e.socket, &vmrun_shim::Request::Start).await?;
        let pid = reply
            .pid
            .ok_or_else(|| err(ErrorKind::Internal, "the shim's start reply has no pid"))?;
        if let Ok(mut p) = e.pid.lock() {
            *p = Some(pid);
        }
        Ok(pid)
    }

    /// Waits for the process to exit.
    pub async fn wait(&self, id: &str) -> Result<ExitInfo, AgentError> {
        let e = self.get(id)?;
        wait_entry(&e).await
    }

    /// Sends `signal` to the process.
    pub fn kill(&self, id: &str, signal: i32) -> Result<(), AgentError> {
        let e = self.get(id)?;
        let sig = nix::sys::signal::Signal::try_from(signal)
            .map_err(|_| err(ErrorKind::BadRequest, format!("invalid signal {signal}")))?;
        let Some(pid) = e.pid() else {
            return Err(err(ErrorKind::Conflict, format!("{id} is not started")));
        };
        if e.exited() {
            return Err(err(ErrorKind::Conflict, format!("{id} is not running")));
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
            .map_err(|e| internal(format!("signalling {id}"), e))
    }

    /// Resizes the process's terminal.
    pub async fn resize(&self, id: &str, height: u16, width: u16) -> Result<(), AgentError> {
        let e = self.get(id)?;
        if !e.tty {
            return Err(err(ErrorKind::Conflict, format!("{id} has no terminal")));
        }
        shim_client::call(&e.socket, &vmrun_shim::Request::Resize { height, width }).await?;
        Ok(())
    }

    /// Forgets a container and its execs; `force` kills it first.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), AgentError> {
        let e = self.container(id)?;
        match (e.pid(), e.exited()) {
            (_, true) => {}
            (Some(pid), false) => {
                if !force {
                    return Err(err(
                        ErrorKind::Conflict,
                        format!("container {id} is running: stop it or force the delete"),
                    ));
                }
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            (None, false) => {
                // Created, never started: kill the blocked init, then let the shim's start
                // fail so it cleans up (runtime state, cgroup, rootfs) and exits.
                if let Some(pid) = self.created_init_pid(id) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = shim_client::call(&e.socket, &vmrun_shim::Request::Start).await;
            }
        }
        let mut shim_exit = e.shim_exit.clone();
        if tokio::time::timeout(SHIM_EXIT_GRACE, shim_exit.wait())
            .await
            .is_err()
        {
            return Err(err(
                ErrorKind::Internal,
                format!("the shim of {id} did not exit within {SHIM_EXIT_GRACE:?}"),
            ));
        }
        let execs: Vec<Arc<Entry>> = {
            let mut t = self.table()?;
            let ids: Vec<String> = t
                .entries
                .values()
                .filter(|x| matches!(&x.kind, Kind::Exec { container } if container == id))
                .map(|x| x.id.clone())
                .collect();
            let mut gone: Vec<Arc<Entry>> =
                ids.iter().filter_map(|x| t.entries.remove(x)).collect();
            gone.extend(t.entries.remove(id));
            gone
        };
        for x in execs {
            remove_dir(&x);
        }
        Ok(())
    }

    /// Where container `id`'s own `/etc/hosts` is (when it was created with one).
    pub fn hosts_file(&self, id: &str) -> PathBuf {
        self.paths.state.join("containers").join(id).join("hosts")
    }

    /// The pid of container `id`'s init, created or started (its namespaces are the
    /// container's); `Conflict` once it has exited.
    pub fn container_pid(&self, id: &str) -> Result<i32, AgentError> {
        let e = self.container(id)?;
        if e.exited() {
            return Err(err(
                ErrorKind::Conflict,
                format!("container {id} is not running"),
            ));
        }
        e.pid()
            .or_else(|| self.created_init_pid(id))
            .ok_or_else(|| {
                err(
                    ErrorKind::Conflict,
                    format!("container {id} has no process"),
                )
            })
    }

    fn created_init_pid(&self, id: &str) -> Option<i32> {
        let raw = std::fs::read(self.runtime_root().join(id).join("state.json")).ok()?;
        let v: Value = serde_json::from_slice(&raw).ok()?;
        v.get("pid")?.as_i64().and_then(|p| i32::try_from(p).ok())
    }

    /// Every known process.
    pub fn list(&self) -> Result<Vec<ListEntry>, AgentError> {
        let t = self.table()?;
        let mut out: Vec<ListEntry> = t
            .entries
            .values()
            .map(|e| ListEntry {
                id: e.id.clone(),
                container_id: match &e.kind {
                    Kind::Exec { container } => Some(container.clone()),
                    Kind::Container { .. } => None,
                },
                status: e.status(),
                pid: e.pid(),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// Waits for an entry's exit: its record, the shim's answer, or the file the shim left.
pub async fn wait_entry(e: &Entry) -> Result<ExitInfo, AgentError> {
    if let Some(done) = e.exit.lock().ok().and_then(|x| x.clone()) {
        return Ok(done);
    }
    let info = match e.read_exit_file() {
        Some(info) => info,
        None => match shim_client::wait(&e.socket).await {
            Ok(s) => ExitInfo {
                exit_code: s.exit_code,
                oom_killed: s.oom_killed,
                finished_at: s.finished_at,
            },
            Err(first) => {
                // The shim is gone or going: its exit file is the record.
                let mut shim_exit = e.shim_exit.clone();
                let _ = tokio::time::timeout(SHIM_EXIT_GRACE, shim_exit.wait()).await;
                e.read_exit_file().ok_or(first)?
            }
        },
    };
    if let Ok(mut x) = e.exit.lock() {
        *x = Some(info.clone());
    }
    Ok(info)
}

fn remove_dir(e: &Entry) {
    if let Kind::Container { rootfs, .. } = &e.kind {
        let target = rootfs.to_string_lossy();
        if crate::mounts::is_mount_point(&target) {
            let _ = nix::mount::umount2(rootfs.as_path(), nix::mount::MntFlags::MNT_DETACH);
        }
        if crate::mounts::is_mount_point(&target) {
            tracing::warn!("{target} is still mounted: leaving {}", e.dir.display());
            return;
        }
    }
    if let Err(err) = std::fs::remove_dir_all(&e.dir) {
        tracing::warn!("removing {}: {err}", e.dir.display());
    }
}
