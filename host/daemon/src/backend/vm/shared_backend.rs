//! [`SharedVmBackend`]: the `ContainerBackend` of containers in the [`SharedVm`], and its
//! `SharedVmControl` (`vmrun vm status|start|stop`, volume removal).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use vmrun_agent_protocol::DATA_DIR;

use super::guest::{self, GuestContainers, NetworkPlace};
use super::shared::{SharedVm, SharedVmStatus};
use super::user_networks::{UserNetworks, SHARED_DOMAIN};
use super::{ports, shares, spec};
use crate::backend::{
    BackendError, ContainerBackend, ContainerFiles, ContainerSpec, CreatedContainer, ExecSpec,
    GraphDriver, MountSpec, NetworkEndpoint, ProcessHandle, Reconnected, ResourceStats, TopProcess,
};
use crate::config::DaemonConfig;

/// A container's writable layer on the data disk (relative to [`DATA_DIR`]).
fn container_dir(id: &str) -> PathBuf {
    PathBuf::from("containers").join(id)
}

/// Runs containers in the [`SharedVm`].
pub struct SharedVmBackend {
    config: DaemonConfig,
    shared: Arc<SharedVm>,
    running: GuestContainers,
    networks: Arc<UserNetworks>,
}

impl SharedVmBackend {
    /// A backend over `shared`, its containers on user networks through `networks`.
    pub fn new(config: DaemonConfig, shared: Arc<SharedVm>, networks: Arc<UserNetworks>) -> Self {
        SharedVmBackend {
            config,
            shared,
            running: GuestContainers::default(),
            networks,
        }
    }

    /// The host's copy of container `id`'s hosts file.
    fn hosts_file(&self, id: &str) -> PathBuf {
        self.config.container_dir(id).join("hosts")
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.config.container_dir(id).join(format!("{id}-json.log"))
    }

    /// Where `c`'s files are for `docker cp`/`export`: the shared VM (booted if needed),
    /// with the stopped container's layers and writable layer named to the agent (and
    /// with `volumes` its volumes and binds).
    async fn files_at(
        &self,
        c: &ContainerSpec,
        volumes: bool,
    ) -> Result<super::files::FilesAt, BackendError> {
        if let Ok(machine) = self.running.machine(&c.id) {
            return Ok(super::files::FilesAt::running(machine));
        }
        let mut guest = self.guest_mounts(c)?;
        if !volumes {
            guest = GuestMounts::default();
        }
        let machine = self.shared.ensure().await?;
        let mut layers = Vec::with_capacity(c.layers.len());
        for layer in &c.layers {
            layers.push(self.shared.mount_layer(&machine, layer).await?);
        }
        // A container that never started has no volume directories in the VM yet.
        prepare_volumes(&machine, c, &guest.volumes, &layers).await?;
        let (stopped_mounts, running_shares) =
            super::files::stopped_mounts(&machine, guest.shares, &guest.mounts).await?;
        Ok(super::files::FilesAt {
            machine,
            stopped: Some(vmrun_agent_protocol::RootfsSpec {
                layers,
                writable: Some(Path::new(DATA_DIR).join(container_dir(&c.id))),
            }),
            stopped_mounts,
            _keep: Some(Box::new(running_shares)),
        })
    }

    /// `c`'s mounts in the guest, in order: named volumes
    /// (`<data-root>/volumes/<name>/_data`) live on the VM's data disk; host directories
    /// are shared into the VM.
    fn guest_mounts<'c>(&self, c: &'c ContainerSpec) -> Result<GuestMounts<'c>, BackendError> {
        let root = self.config.data_root.join("volumes");
        let mut out = GuestMounts::default();
        for (i, m) in c.mounts.iter().enumerate() {
            let volume = m
                .source
                .strip_prefix(&root)
                .ok()
                .and_then(|rest| {
                    let mut parts = rest.iter();
                    let name = parts.next()?.to_str()?.to_string();
                    (parts.next()? == "_data" && parts.next().is_none()).then_some(name)
                })
                .filter(|n| vmrun_agent_protocol::valid_id(n));
            match volume {
                Some(name) => {
                    out.mounts.push(MountSpec {
                        source: Path::new(DATA_DIR).join(volume_data_dir(&name)),
                        destination: m.destination.clone(),
                        read_only: m.read_only,
                        fill_from_image: false,
                    });
                    out.volumes.push((name, m));
                }
                None => {
                    let (share, mount) = shares::share_mount(c, i, m)?;
                    out.mounts.push(mount);
                    out.shares.push(share);
                }
            }
        }
        Ok(out)
    }
}

/// A container's mounts as the shared VM makes them.
#[derive(Default)]
struct GuestMounts<'c> {
    /// Every mount, sources in the guest.
    mounts: Vec<MountSpec>,
    /// The named volumes among them, with the container's mounts of them.
    volumes: Vec<(String, &'c MountSpec)>,
    /// The host directories among them.
    shares: Vec<shares::GuestShare>,
}

/// Makes the directories of `volumes` on the data disk (kept if there) and fills them
/// as [`fill_volumes`] does.
async fn prepare_volumes(
    machine: &super::machine::Machine,
    c: &ContainerSpec,
    volumes: &[(String, &MountSpec)],
    layers: &[PathBuf],
) -> Result<(), BackendError> {
    for (name, _) in volumes {
        machine
            .call(
                "making the volume's directory",
                machine.agent().make_data_dir(volume_data_dir(name)),
            )
            .await?;
    }
    fill_volumes(machine, c, volumes, layers).await;
    Ok(())
}

/// Fills each empty volume of `volumes` its mount asks to fill ([`MountSpec::fill_from_image`],
/// a container's first start) with what the image of `layers` (in the guest) has at its
/// mount point, in the guest as the engine does for volumes on this host; a failure is
/// logged and the container starts anyway, as natively.
async fn fill_volumes(
    machine: &super::machine::Machine,
    c: &ContainerSpec,
    volumes: &[(String, &MountSpec)],
    layers: &[PathBuf],
) {
    for (name, m) in volumes.iter().filter(|(_, m)| m.fill_from_image) {
        let req = vmrun_agent_protocol::FillDataDir {
            path: volume_data_dir(name),
            layers: layers.to_vec(),
            destination: m.destination.clone(),
        };
        // Bounded by the image's content, like a start; a VM that stops ends the call.
        match machine
            .call_until(
                "filling the volume",
                None,
                machine.agent().fill_data_dir(req),
            )
            .await
        {
            Ok(copied) => tracing::debug!(container = c.short_id(), volume = %name, copied),
            Err(e) => tracing::warn!(container = c.short_id(), volume = %name, "{e}"),
        }
    }
}

/// A named volume's data on the data disk (relative to [`DATA_DIR`]).
fn volume_data_dir(name: &str) -> PathBuf {
    PathBuf::from("volumes").join(name).join("_data")
}

#[async_trait]
impl ContainerBackend for SharedVmBackend {
    async fn create(&self, c: &ContainerSpec) -> Result<CreatedContainer, BackendError> {
        let guest = self.guest_mounts(c)?;
        let oci = spec::container_spec_with_mounts(c, &guest.mounts)?;
        let dir = self.config.container_dir(&c.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| BackendError::Failed(format!("creating {}: {e}", dir.display())))?;
        let machine = self.shared.ensure().await?;
        // The agent forgets a container when it exits; one left from a run the daemon did
        // not see end (a daemon restart) goes now.
        let _ = machine
            .call("forgetting an old run", machine.agent().delete(&c.id, true))
            .await;
        let mut guest_layers = Vec::with_capacity(c.layers.len());
        for layer in &c.layers {
            guest_layers.push(self.shared.mount_layer(&machine, layer).await?);
        }
        prepare_volumes(&machine, c, &guest.volumes, &guest_layers).await?;
        let writable = Path::new(DATA_DIR).join(container_dir(&c.id));
        let (links, endpoint) = guest::create_container(
            &machine,
            c,
            &oci,
            (guest_layers, writable),
            guest.shares,
            &self.log_path(&c.id),
            NetworkPlace {
                networks: &self.networks,
                domain: SHARED_DOMAIN,
                hosts_file: self.hosts_file(&c.id),
            },
        )
        .await?;
        tracing::info!(
            container = c.short_id(),
            pid = machine.pid(),
            "container created in the shared VM"
        );
        let (mut listeners, ports) =
            match ports::publish(&machine, c, self.config.auto_forward).await {
                Ok(p) => p,
                Err(e) => {
                    self.networks.release(&c.id).await;
                    let _ = machine
                        .call(
                            "forgetting the container",
                            machine.agent().delete(&c.id, true),
                        )
                        .await;
                    return Err(e);
                }
            };
        let auto_ports = listeners.take_auto_ports();
        self.running
            .insert(&c.id, machine.clone(), oci, listeners, links);
        Ok(guest::created(machine, &c.id, ports, auto_ports, endpoint))
    }

    async fn create_exec(
        &self,
        c: &ContainerSpec,
        exec: &ExecSpec,
    ) -> Result<Arc<dyn ProcessHandle>, BackendError> {
        self.running.create_exec(c, exec).await
    }

    async fn reconnect(&self, _c: &ContainerSpec) -> Result<Reconnected, BackendError> {
        // The VM dies with the daemon that ran it (PR_SET_PDEATHSIG); the container's
        // files stay on the data disk for its next start.
        Err(BackendError::Gone(
            "the shared VM stopped with the daemon that ran it".into(),
        ))
    }

    async fn release(&self, c: &ContainerSpec) {
        self.networks.release(&c.id).await;
        let Some(machine) = self.running.remove(&c.id).await else {
            return;
        };
        machine.drain_log(&c.id).await;
        if machine.exit_reason().is_none() {
            if let Err(e) = machine
                .call(
                    "forgetting the container",
                    machine.agent().delete(&c.id, true),
                )
                .await
            {
                tracing::debug!(container = c.short_id(), "{e}");
            }
        }
    }

    async fn remove(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        self.release(c).await;
        self.shared.remove_data(&container_dir(&c.id)).await?;
        let dir = self.config.container_dir(&c.id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackendError::Failed(format!(
                "removing {}: {e}",
                dir.display()
            ))),
        }
    }

    async fn kill(&self, c: &ContainerSpec, signal: i32) -> Result<(), BackendError> {
        self.running.kill(&c.id, signal).await
    }

    async fn stats(&self, c: &ContainerSpec) -> Result<ResourceStats, BackendError> {
        self.running.stats(&c.id).await
    }

    async fn pids(&self, c: &ContainerSpec) -> Result<Vec<i32>, BackendError> {
        let top = self.running.top(&c.id).await?;
        Ok(top.into_iter().map(|p| p.pid).collect())
    }

    async fn top(&self, c: &ContainerSpec) -> Result<Option<Vec<TopProcess>>, BackendError> {
        Ok(Some(self.running.top(&c.id).await?))
    }

    async fn connect_network(
        &self,
        c: &ContainerSpec,
        network: &str,
        aliases: &[String],
    ) -> Result<NetworkEndpoint, BackendError> {
        let machine = self.running.machine(&c.id)?;
        let hosts_file = self.hosts_file(&c.id);
        self.networks
            .connect(&machine, c, SHARED_DOMAIN, network, aliases, hosts_file)
            .await
    }

    async fn disconnect_network(
        &self,
        c: &ContainerSpec,
        network: &str,
    ) -> Result<(), BackendError> {
        let machine = self.running.machine(&c.id)?;
        self.networks.disconnect(&machine, c, network).await
    }

    async fn pause(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        self.running.freeze(&c.id, true).await
    }

    async fn unpause(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        self.running.freeze(&c.id, false).await
    }

    async fn update(
        &self,
        c: &ContainerSpec,
        changed: &crate::backend::Resources,
    ) -> Result<(), BackendError> {
        self.running.update(&c.id, changed).await
    }

    async fn writable_layer(
        &self,
        c: &ContainerSpec,
    ) -> Result<Option<crate::backend::WritableLayer>, BackendError> {
        // A stopped container's layer is on the data disk: the VM boots to read it.
        let machine = self.shared.ensure().await?;
        let tmp = self.config.data_root.join("vm").join("tmp");
        super::writable::fetch(&machine, container_dir(&c.id).join("upper"), &tmp)
            .await
            .map(Some)
    }

    async fn path_stat(
        &self,
        c: &ContainerSpec,
        path: &str,
    ) -> Result<crate::backend::PathStat, BackendError> {
        super::files::path_stat(self.files_at(c, true).await?, c, path).await
    }

    async fn archive(
        &self,
        c: &ContainerSpec,
        path: &str,
    ) -> Result<(crate::backend::PathStat, crate::backend::ByteStream), BackendError> {
        super::files::archive(self.files_at(c, true).await?, c, path).await
    }

    async fn extract(
        &self,
        c: &ContainerSpec,
        path: &str,
        opts: crate::backend::ExtractOptions,
        tar: crate::backend::ByteStream,
    ) -> Result<(), BackendError> {
        super::files::extract(self.files_at(c, true).await?, c, path, opts, tar).await
    }

    async fn export(&self, c: &ContainerSpec) -> Result<crate::backend::ByteStream, BackendError> {
        super::files::export(self.files_at(c, false).await?, c).await
    }

    async fn changes(
        &self,
        c: &ContainerSpec,
    ) -> Result<Vec<crate::backend::Change>, BackendError> {
        super::writable::changes(self.writable_layer(c).await?, c.layers.clone()).await
    }

    fn files(&self, c: &ContainerSpec) -> ContainerFiles {
        let mut data = std::collections::BTreeMap::new();
        data.insert("Vm".into(), "shared".into());
        data.insert("VmBackend".into(), self.shared.vm.name().to_string());
        data.insert(
            "DataDisk".into(),
            self.shared.data_disk().display().to_string(),
        );
        data.insert(
            "WritableLayer".into(),
            format!(
                "{}:{}",
                self.shared.data_disk().display(),
                container_dir(&c.id).display()
            ),
        );
        if let Ok(m) = self.running.machine(&c.id) {
            data.insert("VmPid".into(), m.pid().to_string());
        }
        ContainerFiles {
            log: self.log_path(&c.id),
            hosts: None,
            hostname: None,
            resolv_conf: None,
            sandbox: None,
            writable_layer: None,
            graph_driver: Some(GraphDriver {
                name: "vmrun-vm".into(),
                data,
            }),
        }
    }
}

#[async_trait]
impl crate::backend::SharedVmControl for SharedVmBackend {
    async fn status(&self) -> SharedVmStatus {
        let running = match self.shared.running().await {
            Some(m) => self.running.count_in(&m),
            None => 0,
        };
        self.shared.status(running).await
    }

    async fn start(&self) -> Result<SharedVmStatus, BackendError> {
        self.shared.ensure().await?;
        Ok(crate::backend::SharedVmControl::status(self).await)
    }

    async fn stop(&self) -> bool {
        self.shared.stop().await
    }

    async fn prune_layers(&self) {
        self.shared.prune_layers().await;
    }

    async fn remove_volume(&self, name: &str) -> Result<(), BackendError> {
        if !vmrun_agent_protocol::valid_id(name) {
            return Ok(());
        }
        self.shared
            .remove_data(&PathBuf::from("volumes").join(name))
            .await
    }
}
