//! Changing a running container in place: `docker pause` / `unpause` (its cgroup
//! frozen and thawed) and `docker update` (resource limits applied to its cgroup and
//! kept in its record, the restart policy kept in its record).
//!
//! As dockerd: a paused container is still running (`State.Running` and
//! `State.Paused`), exec into it is refused, a SIGKILL ends it (it is thawed so the
//! signal is delivered), and stop thaws it first so it can handle its stop signal.

use serde_json::{json, Value};

use super::{Engine, EngineError};
use crate::backend::Resources;
use crate::state::{ContainerRecord, DockerHostConfig};

/// What `POST /containers/{id}/update` may change; `None` (or docker's 0): unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateRequest {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory + swap in bytes, -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// CPUs in units of 1e-9.
    pub nano_cpus: Option<i64>,
    /// Relative CPU weight.
    pub cpu_shares: Option<i64>,
    /// CFS quota in microseconds.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<i64>,
    /// CPUs to run on.
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    pub cpuset_mems: Option<String>,
    /// Task limit; 0 or -1 for unlimited.
    pub pids_limit: Option<i64>,
    /// Restart policy name and retry count.
    pub restart_policy: Option<(String, i64)>,
}

/// dockerd's minimum memory limit.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

impl UpdateRequest {
    /// Checks the request against the container's current limits, as dockerd does.
    fn check(&self, hc: &DockerHostConfig) -> Result<(), EngineError> {
        if self.memory.is_some_and(|m| m < MIN_MEMORY) {
            return Err(EngineError::bad_request(
                "Minimum memory limit allowed is 6MB",
            ));
        }
        let memory = self.memory.or(hc.memory).unwrap_or(0);
        if let Some(swap) = self.memory_swap.filter(|s| *s > 0) {
            if memory > 0 && swap < memory {
                return Err(EngineError::bad_request(
                    "Minimum memoryswap limit should be larger than memory limit, see usage",
                ));
            }
        } else if let (Some(m), Some(old_swap)) = (self.memory, hc.memory_swap.filter(|s| *s > 0)) {
            if m > old_swap {
                return Err(EngineError::bad_request(
                    "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
                ));
            }
        }
        if self.nano_cpus.is_some() && (self.cpu_quota.is_some() || hc.cpu_quota.unwrap_or(0) > 0) {
            return Err(EngineError::bad_request(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
            ));
        }
        if let Some((name, retries)) = &self.restart_policy {
            match name.as_str() {
                "" | "no" | "always" | "unless-stopped" if *retries != 0 => {
                    return Err(EngineError::bad_request(format!(
                        "maximum retry count cannot be used with restart policy '{name}'"
                    )))
                }
                "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
                other => {
                    return Err(EngineError::bad_request(format!(
                        "invalid restart policy '{other}'"
                    )))
                }
            }
            if *retries < 0 {
                return Err(EngineError::bad_request(
                    "maximum retry count cannot be negative",
                ));
            }
            if name != "no" && !name.is_empty() && hc.auto_remove.unwrap_or(false) {
                return Err(EngineError::bad_request(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container",
                ));
            }
        }
        Ok(())
    }

    /// The limits to apply to a running container: the changed ones, with the memory
    /// swap kept as recorded when only the memory changes.
    fn changed(&self, hc: &DockerHostConfig) -> Resources {
        let memory_swap = match self.memory {
            Some(_) => self.memory_swap.or(hc.memory_swap),
            None => self.memory_swap,
        };
        Resources {
            memory: self.memory,
            memory_swap,
            nano_cpus: self.nano_cpus,
            cpu_shares: self.cpu_shares,
            cpu_quota: self.cpu_quota,
            cpu_period: self.cpu_period,
            pids_limit: self.pids_limit,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            shm_size: None,
        }
    }

    /// Writes the request into the container's record.
    fn save(&self, hc: &mut DockerHostConfig) {
        let set = |field: &mut Option<i64>, v: Option<i64>| {
            if v.is_some() {
                *field = v;
            }
        };
        set(&mut hc.memory, self.memory);
        set(&mut hc.memory_swap, self.memory_swap);
        set(&mut hc.nano_cpus, self.nano_cpus);
        set(&mut hc.cpu_shares, self.cpu_shares);
        set(&mut hc.cpu_quota, self.cpu_quota);
        set(&mut hc.cpu_period, self.cpu_period);
        set(&mut hc.pids_limit, self.pids_limit);
        if let Some(c) = &self.cpuset_cpus {
            hc.rest
                .insert("CpusetCpus".into(), Value::String(c.clone()));
        }
        if let Some(m) = &self.cpuset_mems {
            hc.rest
                .insert("CpusetMems".into(), Value::String(m.clone()));
        }
        if let Some((name, retries)) = &self.restart_policy {
            hc.rest.insert(
                "RestartPolicy".into(),
                json!({ "Name": name, "MaximumRetryCount": retries }),
            );
        }
    }
}

impl Engine {
    /// `docker pause`.
    pub async fn pause_container(&self, key: &str) -> Result<(), EngineError> {
        let id = self.container(key)?.id;
        let _guard = self.lock_container(&id).await;
        let rec = self.container(&id)?;
        if !rec.is_running() {
            return Err(EngineError::conflict(format!(
                "Container {id} is not running"
            )));
        }
        if rec.state.paused {
            return Err(EngineError::conflict(format!(
                "Container {id} is already paused"
            )));
        }
        let (backend, spec) = self.backend_of(&rec)?;
        backend.pause(&spec).await?;
        self.store.update(&id, |r| r.state.paused = true)?;
        self.events
            .emit("container", "pause", &id, &[("name", rec.name.clone())]);
        Ok(())
    }

    /// `docker unpause`.
    pub async fn unpause_container(&self, key: &str) -> Result<(), EngineError> {
        let id = self.container(key)?.id;
        let _guard = self.lock_container(&id).await;
        let rec = self.container(&id)?;
        if !rec.is_running() || !rec.state.paused {
            return Err(EngineError::conflict(format!(
                "Container {id} is not paused"
            )));
        }
        self.thaw(&rec).await?;
        self.events
            .emit("container", "unpause", &id, &[("name", rec.name.clone())]);
        Ok(())
    }

    /// Thaws a paused container and records it.
    pub(super) async fn thaw(&self, rec: &ContainerRecord) -> Result<(), EngineError> {
        let (backend, spec) = self.backend_of(rec)?;
        backend.unpause(&spec).await?;
        self.store.update(&rec.id, |r| r.state.paused = false)?;
        Ok(())
    }

    /// After `signal` went to a container: a paused one is thawed for a SIGKILL, so it
    /// dies (a frozen cgroup v1 task would hold the signal).
    pub(super) async fn thaw_for_signal(&self, rec: &ContainerRecord, signal: i32) {
        if signal != libc::SIGKILL {
            return;
        }
        let Ok(current) = self.container(&rec.id) else {
            return;
        };
        if current.state.paused {
            if let Err(e) = self.thaw(&current).await {
                tracing::warn!("thawing {} for SIGKILL: {e}", rec.short_id());
            }
        }
    }

    /// `docker update`: applies the limits to the running container and keeps them and
    /// the restart policy in its record. Returns docker's warnings.
    pub async fn update_container(
        &self,
        key: &str,
        req: UpdateRequest,
    ) -> Result<Vec<String>, EngineError> {
        let id = self.container(key)?.id;
        let _guard = self.lock_container(&id).await;
        let rec = self.container(&id)?;
        req.check(&rec.host_config)?;
        let changed = req.changed(&rec.host_config);
        if rec.is_running() && changed != Resources::default() {
            let (backend, spec) = self.backend_of(&rec)?;
            backend
                .update(&spec, &changed)
                .await
                .map_err(|e| EngineError::internal(format!("Cannot update container {id}: {e}")))?;
        }
        self.store.update(&id, |r| req.save(&mut r.host_config))?;
        self.events
            .emit("container", "update", &id, &[("name", rec.name.clone())]);
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_like_dockerd() {
        let rec = DockerHostConfig::default();
        let small = UpdateRequest {
            memory: Some(1024),
            ..Default::default()
        };
        assert!(small.check(&rec).unwrap_err().to_string().contains("6MB"));
        let swap = UpdateRequest {
            memory: Some(64 << 20),
            memory_swap: Some(32 << 20),
            ..Default::default()
        };
        assert!(swap.check(&rec).is_err());
        let policy = UpdateRequest {
            restart_policy: Some(("always".into(), 3)),
            ..Default::default()
        };
        assert!(policy.check(&rec).is_err());
        let bad = UpdateRequest {
            restart_policy: Some(("sometimes".into(), 0)),
            ..Default::default()
        };
        assert!(bad.check(&rec).is_err());
        let ok = UpdateRequest {
            memory: Some(64 << 20),
            restart_policy: Some(("on-failure".into(), 3)),
            ..Default::default()
        };
        assert!(ok.check(&rec).is_ok());
        let mut saved = DockerHostConfig::default();
        ok.save(&mut saved);
        assert_eq!(saved.memory, Some(64 << 20));
        assert_eq!(
            saved.rest["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
    }
}
