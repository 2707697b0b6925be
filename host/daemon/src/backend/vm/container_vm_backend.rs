//! The [`ContainerBackend`] of containers in microVMs of their own
//! ([`VmContainerBackend`]): create boots the container's VM with its disks and shares,
//! and every other operation reaches the container through that VM's agent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use super::{
    files, guest, ports, shares, shut_down_as, spec, user_networks, writable, VmContainerBackend,
};
use crate::backend::{
    BackendError, ByteStream, ContainerBackend, ContainerFiles, ContainerSpec, CreatedContainer,
    ExecSpec, ExtractOptions, GraphDriver, NetworkEndpoint, PathStat, ProcessHandle, Reconnected,
    ResourceStats,
};

#[async_trait]
impl ContainerBackend for VmContainerBackend {
    async fn create(&self, c: &ContainerSpec) -> Result<CreatedContainer, BackendError> {
        // Binds and named volumes alike are host directories, shared into the VM.
        let mut guest_shares = Vec::new();
        let mut guest_mounts = Vec::new();
        for (i, m) in c.mounts.iter().enumerate() {
            let (share, mount) = shares::share_mount(c, i, m)?;
            guest_shares.push(share);
            guest_mounts.push(mount);
        }
        let oci = spec::container_spec_with_mounts(c, &guest_mounts)?;
        let machine = self.boot(c).await?;
        machine.keep_clock();
        let (links, endpoint) = match self.create_in_guest(&machine, c, &oci, guest_shares).await {
            Ok(created) => created,
            Err(e) => {
                machine.shutdown().await;
                return Err(e);
            }
        };
        let (mut listeners, ports) =
            match ports::publish(&machine, c, self.config.auto_forward).await {
                Ok(p) => p,
                Err(e) => {
                    self.networks.release(&c.id).await;
                    machine.shutdown().await;
                    return Err(e);
                }
            };
        let auto_ports = listeners.take_auto_ports();
        tracing::info!(
            container = c.short_id(),
            backend = machine.backend(),
            pid = machine.pid(),
            "container VM ready"
        );
        if let Some(old) = self
            .running
            .insert(&c.id, machine.clone(), oci, listeners, links)
        {
            old.shutdown().await;
        }
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
        // Monitors die with the daemon that launched them (PR_SET_PDEATHSIG).
        Err(BackendError::Gone(
            "its VM stopped with the daemon that ran it".into(),
        ))
    }

    async fn release(&self, c: &ContainerSpec) {
        self.networks.release(&c.id).await;
        let Some(machine) = self.running.remove(&c.id).await else {
            return;
        };
        // The exit is recorded once the log is complete; the guest's shutdown (a clean
        // unmount of the data disk, seconds under TCG) goes on meanwhile.
        machine.drain_log(&c.id).await;
        let rt = tokio::runtime::Handle::current();
        if let Some(old) = shut_down_as(&self.stopping, &rt, &c.id, machine) {
            old.machine.kill().await;
        }
    }

    async fn remove(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        self.release(c).await;
        // Its disks go with it: no need for a clean shutdown.
        if let Some(last) = self.take_stopping(&c.id) {
            last.machine.kill().await;
            let _ = last.task.await;
        }
        let dir = self.dir(&c.id);
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

    async fn top(
        &self,
        c: &ContainerSpec,
    ) -> Result<Option<Vec<crate::backend::TopProcess>>, BackendError> {
        Ok(Some(self.running.top(&c.id).await?))
    }

    async fn connect_network(
        &self,
        c: &ContainerSpec,
        network: &str,
        aliases: &[String],
    ) -> Result<NetworkEndpoint, BackendError> {
        let machine = self.running.machine(&c.id)?;
        let domain = user_networks::own_vm_domain(&c.id);
        let hosts_file = self.dir(&c.id).join("hosts");
        self.networks
            .connect(&machine, c, &domain, network, aliases, hosts_file)
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
        let tmp = self.config.data_root.join("vm").join("tmp");
        if let Ok(machine) = self.running.machine(&c.id) {
            return writable::fetch(&machine, PathBuf::from("rw").join("upper"), &tmp)
                .await
                .map(Some);
        }
        // Its VM is gone, or shutting down: wait until it has let go of the disk.
        if let Some(last) = self.take_stopping(&c.id) {
            let _ = last.task.await;
        }
        let disk = self.data_disk(&c.id);
        tokio::task::spawn_blocking(move || writable::mount_stopped(&disk, "rw/upper", &tmp))
            .await
            .map_err(|e| BackendError::Failed(format!("mounting the data disk: {e}")))?
            .map(Some)
    }

    async fn path_stat(&self, c: &ContainerSpec, path: &str) -> Result<PathStat, BackendError> {
        files::path_stat(self.files_at(c, true).await?, c, path).await
    }

    async fn archive(
        &self,
        c: &ContainerSpec,
        path: &str,
    ) -> Result<(PathStat, ByteStream), BackendError> {
        files::archive(self.files_at(c, true).await?, c, path).await
    }

    async fn extract(
        &self,
        c: &ContainerSpec,
        path: &str,
        opts: ExtractOptions,
        tar: ByteStream,
    ) -> Result<(), BackendError> {
        files::extract(self.files_at(c, true).await?, c, path, opts, tar).await
    }

    async fn export(&self, c: &ContainerSpec) -> Result<ByteStream, BackendError> {
        files::export(self.files_at(c, false).await?, c).await
    }

    async fn changes(
        &self,
        c: &ContainerSpec,
    ) -> Result<Vec<crate::backend::Change>, BackendError> {
        writable::changes(self.writable_layer(c).await?, c.layers.clone()).await
    }

    fn files(&self, c: &ContainerSpec) -> ContainerFiles {
        let mut data: BTreeMap<String, String> = BTreeMap::new();
        let disks: Vec<String> = c
            .layers
            .iter()
            .rev()
            .map(|l| self.layers.path_of(l).display().to_string())
            .collect();
        data.insert("LayerDisks".into(), disks.join(":"));
        data.insert(
            "DataDisk".into(),
            self.data_disk(&c.id).display().to_string(),
        );
        data.insert(
            "SerialLog".into(),
            self.serial_log(&c.id).display().to_string(),
        );
        data.insert("Vm".into(), format!("container-{}", c.short_id()));
        data.insert("VmBackend".into(), self.vm.name().to_string());
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
