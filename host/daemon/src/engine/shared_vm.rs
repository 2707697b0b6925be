//! `vmrun vm status|start|stop`: the daemon's shared VM, as the engine sees it.

use super::{Engine, EngineError};
use crate::backend::{Isolation, SharedVmControl, SharedVmStatus};

impl Engine {
    fn shared_vm(&self) -> Result<&dyn SharedVmControl, EngineError> {
        match &self.shared_vm {
            Some(vm) => Ok(vm.as_ref()),
            None => Err(EngineError::bad_request(
                match self.backends.get(Isolation::SharedVm) {
                    Err(e) => e.to_string(),
                    Ok(_) => "this daemon has no shared VM".into(),
                },
            )),
        }
    }

    /// Removes named volume `name`: its host directory, and its data in the shared VM
    /// (now, or at the VM's next boot).
    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.volumes.remove(name)?;
        if let Some(vm) = &self.shared_vm {
            vm.remove_volume(name).await?;
        }
        Ok(())
    }

    /// Removes the anonymous volumes of removed container `rec` that no other container
    /// mounts (`docker rm -v`, and `--rm` containers, as dockerd does); failures are
    /// logged.
    pub async fn remove_anonymous_volumes(&self, rec: &crate::state::ContainerRecord) {
        let others = self.store.list();
        for name in rec.mounts.iter().filter_map(|m| m.name.as_deref()) {
            let anonymous = self
                .volumes
                .get(name)
                .is_ok_and(|v| v.labels.contains_key(super::volumes::ANONYMOUS_LABEL));
            let used = others
                .iter()
                .filter(|c| c.id != rec.id)
                .any(|c| c.mounts.iter().any(|m| m.name.as_deref() == Some(name)));
            if !anonymous || used {
                continue;
            }
            match self.remove_volume(name).await {
                Ok(()) => self.events.emit("volume", "destroy", name, &[]),
                Err(e) => tracing::warn!(volume = name, "removing an anonymous volume: {e}"),
            }
        }
    }

    /// After images were removed: the VMs' copies of layers no image or container holds
    /// any more go too (host layer disks, the shared VM's data disk).
    pub async fn prune_vm_layers(&self) {
        if let Some(vm) = &self.shared_vm {
            vm.prune_layers().await;
        }
    }

    /// Where the shared VM stands.
    pub async fn shared_vm_status(&self) -> Result<SharedVmStatus, EngineError> {
        Ok(self.shared_vm()?.status().await)
    }

    /// Boots the shared VM unless it runs.
    pub async fn shared_vm_start(&self) -> Result<SharedVmStatus, EngineError> {
        Ok(self.shared_vm()?.start().await?)
    }

    /// Stops the containers running in the shared VM (as `docker stop` does, `timeout`
    /// seconds each before SIGKILL), then shuts the VM down cleanly. `Ok(false)` when it
    /// was not running.
    pub async fn shared_vm_stop(&self, timeout: Option<i64>) -> Result<bool, EngineError> {
        let vm = self.shared_vm()?;
        let running: Vec<String> = self
            .store
            .list()
            .into_iter()
            .filter(|r| r.isolation == Isolation::SharedVm && r.is_running())
            .map(|r| r.id)
            .collect();
        let stops = running.iter().map(|id| self.stop_container(id, timeout));
        for (id, stopped) in running.iter().zip(futures::future::join_all(stops).await) {
            if let Err(e) = stopped {
                tracing::warn!(container = %id, "stopping before the VM stops: {e}");
            }
        }
        Ok(vm.stop().await)
    }
}
