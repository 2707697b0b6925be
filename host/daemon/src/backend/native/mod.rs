//! The native backend: containers run on this host through the runtime library, one
//! `vmrun-shim` per process, networked by the network manager.

mod archive;
mod files;
mod shim_client;
pub mod spec;
mod stopped;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use vmrun_network::{AttachRequest, Endpoint, NetworkManager, PublishedPort, SocketTarget};

use super::ports;
use vmrun_shim::{OverlayRootfs, ShimConfig, ShimMode};

use super::{
    BackendError, ByteStream, Change, ContainerBackend, ContainerFiles, ContainerSpec,
    CreatedContainer, ExecSpec, ExtractOptions, NetworkEndpoint, PathStat, ProcessHandle,
    Reconnected, ResourceStats, Resources,
};
use crate::config::DaemonConfig;
use files::ContainerPaths;
use shim_client::{read_exit_file, ShimProcess};

/// Runs containers on this host.
pub struct NativeBackend {
    config: DaemonConfig,
    network: Arc<NetworkManager>,
    published: Mutex<HashMap<String, Vec<PublishedPort>>>,
}

impl NativeBackend {
    /// A backend keeping its files under the daemon's roots.
    pub fn new(config: DaemonConfig, network: Arc<NetworkManager>) -> Self {
        NativeBackend {
            config,
            network,
            published: Mutex::new(HashMap::new()),
        }
    }

    fn paths(&self, id: &str) -> ContainerPaths {
        ContainerPaths::new(&self.config, id)
    }

    fn runtime_root(&self) -> PathBuf {
        self.config.exec_root.join("runtime")
    }

    async fn attach_network(
        &self,
        c: &ContainerSpec,
        paths: &ContainerPaths,
    ) -> Result<Option<vmrun_network::Endpoint>, BackendError> {
        let network = self.network.clone();
        let req = AttachRequest {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            hostname: c.hostname.clone(),
            network: c.network.mode.clone(),
            aliases: c.network.aliases.clone(),
            hosts_file: paths.hosts.clone(),
            extra_hosts: c.extra_hosts.clone(),
        };
        let endpoint = tokio::task::spawn_blocking(move || {
            // A stale endpoint from a run that ended while the daemon was away.
            let _ = network.detach(&req.container_id);
            network.attach(req)
        })
        .await
        .map_err(|e| BackendError::Failed(format!("network setup panicked: {e}")))?
        .map_err(|e| match e {
            vmrun_network::NetworkError::NotFound(_) => BackendError::BadRequest(e.to_string()),
            other => BackendError::Failed(format!("setting up the network: {other}")),
        })?;
        Ok(Some(endpoint))
    }

    async fn detach_network(&self, id: &str) {
        let network = self.network.clone();
        let id = id.to_string();
        let result = tokio::task::spawn_blocking(move || network.detach(&id)).await;
        if let Ok(Err(e)) = result {
            tracing::warn!("releasing the network endpoint: {e}");
        }
    }

    async fn launch(
        &self,
        c: &ContainerSpec,
        paths: &ContainerPaths,
        netns: Option<&Path>,
    ) -> Result<(ShimProcess, i32), BackendError> {
        files::check_mounts(c)?;
        let spec = spec::build(&spec::SpecInputs {
            container: c,
            rootfs: &paths.rootfs,
            netns,
            files: &paths.files(),
        })?;
        files::write_bundle(paths, &spec)?;
        let config = ShimConfig {
            id: c.id.clone(),
            runtime_root: self.runtime_root(),
            mode: ShimMode::Container {
                bundle: paths.bundle.clone(),
                rootfs: Some(OverlayRootfs {
                    layers: c.layers.clone(),
                    upper: paths.diff.clone(),
                    work: paths.work.clone(),
                    target: paths.rootfs.clone(),
                }),
                user: c.process.user.clone(),
            },
            tty: c.process.tty,
            open_stdin: c.process.open_stdin,
            stdin_once: c.process.stdin_once,
            console_size: c.process.console_size,
            log_path: Some(paths.log.clone()),
            log_rotation: c.log_rotation.map(Into::into),
            socket: paths.socket.clone(),
            exit_file: paths.exit_file.clone(),
        };
        shim_client::launch(
            &self.config.shim_path,
            &config,
            &paths.shim_config,
            &paths.shim_log,
        )
        .await
    }
}

pub(in crate::backend) fn endpoint_state(e: &vmrun_network::Endpoint) -> Option<NetworkEndpoint> {
    let ip = e.ip?;
    Some(NetworkEndpoint {
        network: e.network.clone(),
        network_id: e.network_id.clone(),
        endpoint_id: e.endpoint_id.clone(),
        ip: ip.to_string(),
        prefix_len: e.prefix_len,
        gateway: e.gateway.map(|g| g.to_string()).unwrap_or_default(),
        mac: e.mac.clone().unwrap_or_default(),
    })
}

/// Publishes `c`'s ports towards its address on its bridge (none on the host network or
/// without a network: nothing to reach).
async fn publish_ports(
    c: &ContainerSpec,
    endpoint: Option<&Endpoint>,
) -> Result<(ports::Listeners, Vec<super::PublishedPort>), BackendError> {
    let Some(ip) = endpoint.and_then(|e| e.ip) else {
        return Ok((Vec::new(), Vec::new()));
    };
    ports::publish(c, |b| {
        Arc::new(SocketTarget(std::net::SocketAddr::new(
            ip.into(),
            b.container_port,
        )))
    })
    .await
}

#[async_trait]
impl ContainerBackend for NativeBackend {
    async fn create(&self, c: &ContainerSpec) -> Result<CreatedContainer, BackendError> {
        let paths = self.paths(&c.id);
        paths.prepare(c)?;
        let host_network = c.network.mode == vmrun_network::HOST_NETWORK;
        let endpoint = if host_network {
            files::write_host_network_files(&paths, c)?;
            None
        } else {
            self.attach_network(c, &paths).await?
        };
        let netns = endpoint.as_ref().and_then(|e| e.netns_path.clone());
        let (published, ports) = match publish_ports(c, endpoint.as_ref()).await {
            Ok(p) => p,
            Err(e) => {
                if endpoint.is_some() {
                    self.detach_network(&c.id).await;
                }
                return Err(e);
            }
        };
        let (process, shim_pid) = match self.launch(c, &paths, netns.as_deref()).await {
            Ok(p) => p,
            Err(e) => {
                for p in published {
                    p.close().await;
                }
                if endpoint.is_some() {
                    self.detach_network(&c.id).await;
                }
                return Err(e);
            }
        };
        let endpoint_state = endpoint.as_ref().and_then(endpoint_state);
        if let Ok(mut map) = self.published.lock() {
            map.insert(c.id.clone(), published);
        }
        Ok(CreatedContainer {
            process: Arc::new(process),
            monitor_pid: shim_pid,
            endpoint: endpoint_state,
            ports,
            auto_ports: None,
        })
    }

    async fn create_exec(
        &self,
        c: &ContainerSpec,
        exec: &ExecSpec,
    ) -> Result<Arc<dyn ProcessHandle>, BackendError> {
        let paths = self.paths(&c.id);
        let process = files::exec_process(&paths, exec)?;
        let socket = self
            .config
            .exec_root
            .join("exec")
            .join(format!("{}.sock", files::short_name(&exec.id)));
        let dir = paths.dir.join("exec");
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::create_dir_all(self.config.exec_root.join("exec")))
            .map_err(|e| BackendError::Failed(format!("creating exec dirs: {e}")))?;
        let config = ShimConfig {
            id: c.id.clone(),
            runtime_root: self.runtime_root(),
            mode: ShimMode::Exec {
                exec_id: exec.id.clone(),
                process: Box::new(process),
            },
            tty: exec.tty,
            open_stdin: exec.open_stdin,
            stdin_once: true,
            console_size: exec.console_size,
            log_path: None,
            log_rotation: None,
            socket,
            exit_file: dir.join(format!("{}.exit.json", exec.id)),
        };
        let (process, _pid) = shim_client::launch(
            &self.config.shim_path,
            &config,
            &dir.join(format!("{}.json", exec.id)),
            &dir.join(format!("{}.log", exec.id)),
        )
        .await?;
        Ok(Arc::new(process))
    }

    async fn reconnect(&self, c: &ContainerSpec) -> Result<Reconnected, BackendError> {
        let paths = self.paths(&c.id);
        if tokio::net::UnixStream::connect(&paths.socket).await.is_ok() {
            let endpoint = self.network.endpoint(&c.id);
            match publish_ports(c, endpoint.as_ref()).await {
                Ok((published, _)) => {
                    if let Ok(mut map) = self.published.lock() {
                        map.insert(c.id.clone(), published);
                    }
                }
                Err(e) => tracing::warn!("re-publishing ports of {}: {e}", c.short_id()),
            }
            return Ok(Reconnected::Running(Arc::new(ShimProcess::new(
                &paths.socket,
                &paths.exit_file,
            ))));
        }
        Ok(match read_exit_file(&paths.exit_file) {
            Some(status) => Reconnected::Exited(status),
            None => Reconnected::Lost,
        })
    }

    async fn release(&self, c: &ContainerSpec) {
        // Normally the shim has cleaned up already. If it died (killed, crashed), the
        // container's processes may still run, orphaned: end them and free what they held.
        reap_orphans(c);
        let paths = self.paths(&c.id);
        if nix::mount::umount2(&paths.rootfs, nix::mount::MntFlags::MNT_DETACH).is_ok() {
            tracing::warn!(
                "unmounted the root filesystem of {} left by its monitor",
                c.short_id()
            );
        }
        let published = self.published.lock().ok().and_then(|mut m| m.remove(&c.id));
        for p in published.into_iter().flatten() {
            p.close().await;
        }
        if c.network.mode != vmrun_network::HOST_NETWORK {
            self.detach_network(&c.id).await;
        }
    }

    async fn remove(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        let paths = self.paths(&c.id);
        // A rootfs still mounted (a shim that was killed) must not be deleted through.
        let _ = nix::mount::umount2(&paths.rootfs, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&paths.socket);
        match std::fs::remove_dir_all(&paths.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackendError::Failed(format!(
                "removing {}: {e}",
                paths.dir.display()
            ))),
        }
    }

    async fn kill(&self, c: &ContainerSpec, signal: i32) -> Result<(), BackendError> {
        if c.pid <= 0 {
            return Err(BackendError::Gone(format!(
                "container {} is not running",
                c.short_id()
            )));
        }
        let sig = nix::sys::signal::Signal::try_from(signal)
            .map_err(|_| BackendError::BadRequest(format!("invalid signal: {signal}")))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.pid), sig)
            .map_err(|e| BackendError::Gone(format!("signalling {}: {e}", c.pid)))
    }

    async fn stats(&self, c: &ContainerSpec) -> Result<ResourceStats, BackendError> {
        let m = vmrun_cgroups::manager(&cgroup_path(&c.id))
            .map_err(|e| BackendError::Gone(format!("reading the cgroup: {e}")))?;
        let s = m
            .stats()
            .map_err(|e| BackendError::Gone(format!("reading the cgroup: {e}")))?;
        Ok(ResourceStats {
            memory_usage: s.memory_usage,
            memory_max_usage: s.memory_max_usage,
            memory_limit: s.memory_limit,
            memory_cache: s.memory_cache,
            cpu_usage_ns: s.cpu_usage_ns,
            cpu_user_ns: s.cpu_user_ns,
            cpu_system_ns: s.cpu_system_ns,
            pids_current: s.pids_current,
            pids_limit: s.pids_limit,
        })
    }

    fn files(&self, c: &ContainerSpec) -> ContainerFiles {
        let paths = self.paths(&c.id);
        ContainerFiles {
            log: paths.log.clone(),
            hosts: Some(paths.hosts.clone()),
            hostname: Some(paths.hostname.clone()),
            resolv_conf: Some(paths.resolv_conf.clone()),
            sandbox: Some(paths.netns.clone()),
            writable_layer: Some(paths.diff.clone()),
            graph_driver: Some(paths.graph_driver(&c.layers)),
        }
    }

    async fn connect_network(
        &self,
        c: &ContainerSpec,
        network: &str,
        aliases: &[String],
    ) -> Result<NetworkEndpoint, BackendError> {
        let manager = self.network.clone();
        let req = AttachRequest {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            hostname: c.hostname.clone(),
            network: network.to_string(),
            aliases: aliases.to_vec(),
            hosts_file: self.paths(&c.id).hosts,
            extra_hosts: c.extra_hosts.clone(),
        };
        let endpoint = tokio::task::spawn_blocking(move || manager.connect(req))
            .await
            .map_err(|e| BackendError::Failed(format!("network setup panicked: {e}")))?
            .map_err(network_error)?;
        endpoint_state(&endpoint)
            .ok_or_else(|| BackendError::Failed(format!("network {network} gave no address")))
    }

    async fn disconnect_network(
        &self,
        c: &ContainerSpec,
        network: &str,
    ) -> Result<(), BackendError> {
        let manager = self.network.clone();
        let (id, network) = (c.id.clone(), network.to_string());
        tokio::task::spawn_blocking(move || manager.disconnect(&id, &network))
            .await
            .map_err(|e| BackendError::Failed(format!("network setup panicked: {e}")))?
            .map_err(network_error)
    }

    async fn pids(&self, c: &ContainerSpec) -> Result<Vec<i32>, BackendError> {
        let m = vmrun_cgroups::manager(&cgroup_path(&c.id))
            .map_err(|e| BackendError::Gone(format!("reading the cgroup: {e}")))?;
        let pids = m
            .pids()
            .map_err(|e| BackendError::Gone(format!("reading the cgroup: {e}")))?;
        Ok(pids.into_iter().map(|p| p.as_raw()).collect())
    }

    async fn path_stat(&self, c: &ContainerSpec, path: &str) -> Result<PathStat, BackendError> {
        archive::path_stat(self.paths(&c.id), c.clone(), path.to_owned()).await
    }

    async fn archive(
        &self,
        c: &ContainerSpec,
        path: &str,
    ) -> Result<(PathStat, ByteStream), BackendError> {
        archive::archive(self.paths(&c.id), c.clone(), path.to_owned()).await
    }

    async fn extract(
        &self,
        c: &ContainerSpec,
        path: &str,
        opts: ExtractOptions,
        tar: ByteStream,
    ) -> Result<(), BackendError> {
        archive::extract_into(self.paths(&c.id), c.clone(), path.to_owned(), opts, tar).await
    }

    async fn export(&self, c: &ContainerSpec) -> Result<ByteStream, BackendError> {
        archive::export(self.paths(&c.id), c.clone()).await
    }

    async fn changes(&self, c: &ContainerSpec) -> Result<Vec<Change>, BackendError> {
        archive::changes(self.paths(&c.id), c.clone()).await
    }

    async fn pause(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        with_cgroup(c, "pausing", |m| m.freeze()).await
    }

    async fn unpause(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        with_cgroup(c, "unpausing", |m| m.thaw()).await
    }

    async fn update(&self, c: &ContainerSpec, changed: &Resources) -> Result<(), BackendError> {
        let resources = spec::updated_resources(changed)?;
        with_cgroup(c, "updating", move |m| m.set(&resources)).await
    }
}

/// Runs `op` on the container's cgroup off the async workers.
async fn with_cgroup(
    c: &ContainerSpec,
    what: &'static str,
    op: impl FnOnce(&dyn vmrun_cgroups::CgroupManager) -> Result<(), vmrun_cgroups::CgroupError>
        + Send
        + 'static,
) -> Result<(), BackendError> {
    let path = cgroup_path(&c.id);
    let short = c.short_id().to_owned();
    let id = short.clone();
    tokio::task::spawn_blocking(move || {
        let m = vmrun_cgroups::manager(&path)
            .map_err(|e| BackendError::Gone(format!("{what} {short}: {e}")))?;
        op(m.as_ref()).map_err(|e| BackendError::Failed(format!("{what} {short}: {e}")))
    })
    .await
    .map_err(|e| BackendError::Failed(format!("{what} {id}: {e}")))?
}

/// A network manager's refusal as a backend error.
pub(in crate::backend) fn network_error(e: vmrun_network::NetworkError) -> BackendError {
    use vmrun_network::NetworkError as N;
    match e {
        N::NotFound(_)
        | N::AlreadyConnected { .. }
        | N::NotConnected { .. }
        | N::NoNamespace(_)
        | N::InvalidArgument(_)
        | N::AddressExhausted(_) => BackendError::BadRequest(e.to_string()),
        other => BackendError::Failed(format!("setting up the network: {other}")),
    }
}

/// Kill whatever is left in the container's cgroup and remove the cgroup.
fn reap_orphans(c: &ContainerSpec) {
    let Ok(m) = vmrun_cgroups::manager(&cgroup_path(&c.id)) else {
        return;
    };
    let pids = m.pids().unwrap_or_default();
    if !pids.is_empty() {
        tracing::warn!(
            "container {} lost its monitor: killing {} leftover processes",
            c.short_id(),
            pids.len()
        );
        for pid in pids {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    let _ = m.remove();
}

/// The container's cgroup (relative to each hierarchy's root).
fn cgroup_path(id: &str) -> PathBuf {
    PathBuf::from(format!("/vmrun/{id}"))
}
