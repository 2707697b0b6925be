//! `stats` and `top` data from the backend.

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats, ContainerPidsStats,
    ContainerStatsResponse,
};

use super::{procfs, Engine, EngineError};
use crate::state::ContainerRecord;

impl Engine {
    /// Host pids of a running container's processes.
    pub async fn container_pids(&self, rec: &ContainerRecord) -> Result<Vec<i32>, EngineError> {
        if !rec.is_running() {
            return Err(EngineError::not_running(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let (backend, spec) = self.backend_of(rec)?;
        Ok(backend.pids(&spec).await?)
    }

    /// The processes of a running container as `ps` rows (UID PID PPID C STIME TTY TIME
    /// CMD): from the backend where it has them (a microVM's), else from the host's
    /// `/proc`.
    pub async fn container_top(
        &self,
        rec: &ContainerRecord,
    ) -> Result<Vec<Vec<String>>, EngineError> {
        if !rec.is_running() {
            return Err(EngineError::not_running(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let (backend, spec) = self.backend_of(rec)?;
        if let Some(processes) = backend.top(&spec).await? {
            return Ok(processes
                .into_iter()
                .map(|p| {
                    vec![
                        p.uid.to_string(),
                        p.pid.to_string(),
                        p.ppid.to_string(),
                        "0".into(),
                        "-".into(),
                        "?".into(),
                        "-".into(),
                        p.cmd,
                    ]
                })
                .collect());
        }
        let pids = backend.pids(&spec).await?;
        Ok(pids.into_iter().filter_map(procfs::ps_row).collect())
    }

    /// One stats sample; `prev` fills docker's `precpu_stats`.
    pub async fn container_stats(
        &self,
        rec: &ContainerRecord,
        prev: Option<&ContainerStatsResponse>,
    ) -> Result<ContainerStatsResponse, EngineError> {
        let online = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        let mut resp = ContainerStatsResponse {
            id: Some(rec.id.clone()),
            name: Some(format!("/{}", rec.name)),
            os_type: Some("linux".into()),
            read: Some(vmrun_shim::now_rfc3339()),
            preread: prev.and_then(|p| p.read.clone()),
            precpu_stats: prev.and_then(|p| p.cpu_stats.clone()),
            ..Default::default()
        };
        if !rec.is_running() {
            return Ok(resp);
        }
        let (backend, spec) = self.backend_of(rec)?;
        let s = backend.stats(&spec).await?;
        resp.cpu_stats = Some(ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(s.cpu_usage_ns),
                percpu_usage: None,
                usage_in_kernelmode: Some(s.cpu_system_ns),
                usage_in_usermode: Some(s.cpu_user_ns),
            }),
            system_cpu_usage: Some(procfs::system_cpu_ns()),
            online_cpus: Some(online),
            throttling_data: None,
        });
        resp.memory_stats = Some(ContainerMemoryStats {
            usage: Some(s.memory_usage),
            max_usage: Some(s.memory_max_usage),
            limit: Some(s.memory_limit.unwrap_or_else(host_memory)),
            stats: Some(HashMap::from([
                ("cache".to_string(), s.memory_cache),
                ("total_inactive_file".to_string(), 0),
            ])),
            ..Default::default()
        });
        resp.pids_stats = Some(ContainerPidsStats {
            current: Some(s.pids_current),
            limit: s.pids_limit,
        });
        resp.num_procs = Some(s.pids_current as u32);
        Ok(resp)
    }
}

fn host_memory() -> u64 {
    nix::sys::sysinfo::sysinfo()
        .map(|i| i.ram_total())
        .unwrap_or(0)
}
