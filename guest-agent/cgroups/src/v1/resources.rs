//! Writing OCI resources to cgroup v1 interface files.

use std::path::Path;

use oci_spec::runtime::{LinuxMemory, LinuxResources};

use super::V1Manager;
use crate::convert::{self, DEFAULT_CPU_PERIOD_US};
use crate::fs::{read_file, write_file};
use crate::CgroupError;

/// Applies memory, cpu, cpuset and pids limits across the v1 hierarchies.
pub(super) fn apply(manager: &V1Manager, resources: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(memory) = resources.memory() {
        apply_memory(manager.required("memory")?, memory)?;
    }
    if let Some(cpu) = resources.cpu() {
        let shares = cpu.shares().filter(|s| *s != 0);
        let quota = cpu.quota().filter(|q| *q != 0);
        let period = cpu.period().filter(|p| *p != 0);
        if shares.is_some() || quota.is_some() || period.is_some() {
            let dir = manager.required("cpu")?;
            if let Some(shares) = shares {
                write_file(&dir.join("cpu.shares"), &shares.to_string())?;
            }
            if quota.is_some() || period.is_some() {
                let period = period.unwrap_or(DEFAULT_CPU_PERIOD_US);
                let quota = quota.filter(|q| *q > 0).unwrap_or(-1);
                write_file(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_some() || mems.is_some() {
            let dir = manager.required("cpuset")?;
            if let Some(cpus) = cpus {
                write_file(&dir.join("cpuset.cpus"), cpus)?;
            }
            if let Some(mems) = mems {
                write_file(&dir.join("cpuset.mems"), mems)?;
            }
        }
    }
    if let Some(pids) = resources.pids() {
        let dir = manager.required("pids")?;
        let value =
            convert::pids_limit(pids.limit()).map_or_else(|| "max".into(), |l| l.to_string());
        write_file(&dir.join("pids.max"), &value)?;
    }
    Ok(())
}

/// Sets `memory.limit_in_bytes` and, where swap accounting exists, `memory.memsw.limit_in_bytes`
/// (to `swap` when given, else to the memory limit: no swap). The kernel insists that
/// limit <= memsw at every moment, so the order of the two writes depends on the direction.
fn apply_memory(dir: &Path, memory: &LinuxMemory) -> Result<(), CgroupError> {
    let limit_file = dir.join("memory.limit_in_bytes");
    let memsw_file = dir.join("memory.memsw.limit_in_bytes");
    let limit = memory
        .limit()
        .map(|l| convert::memory_limit("memory.limit", l))
        .transpose()?;
    let memsw = match memory.swap() {
        Some(s) => Some(convert::memory_limit("memory.swap", s)?),
        None => limit,
    };
    let has_memsw = memsw_file.exists();
    match (limit, memsw) {
        (Some(limit), Some(memsw)) if has_memsw => {
            if let (Some(l), Some(s)) = (limit, memsw) {
                if s < l {
                    return Err(CgroupError::InvalidResource {
                        field: "memory.swap",
                        value: format!("{s} is below the memory limit {l}"),
                    });
                }
            }
            let current_memsw = read_file(&memsw_file)?;
            let current_memsw = current_memsw.trim().parse::<u64>().unwrap_or(u64::MAX);
            let grows_past_memsw = limit.is_none_or(|l| l > current_memsw);
            if grows_past_memsw {
                write_file(&memsw_file, &v1_limit(memsw))?;
                write_file(&limit_file, &v1_limit(limit))?;
            } else {
                write_file(&limit_file, &v1_limit(limit))?;
                write_file(&memsw_file, &v1_limit(memsw))?;
            }
        }
        (Some(limit), _) => write_file(&limit_file, &v1_limit(limit))?,
        (None, Some(memsw)) if has_memsw => write_file(&memsw_file, &v1_limit(memsw))?,
        (None, _) => {}
    }
    if let Some(reservation) = memory.reservation() {
        let bytes = convert::memory_limit("memory.reservation", reservation)?;
        write_file(&dir.join("memory.soft_limit_in_bytes"), &v1_limit(bytes))?;
    }
    if let Some(swappiness) = memory.swappiness() {
        if swappiness > 100 {
            return Err(CgroupError::InvalidResource {
                field: "memory.swappiness",
                value: swappiness.to_string(),
            });
        }
        write_file(&dir.join("memory.swappiness"), &swappiness.to_string())?;
    }
    Ok(())
}

/// v1 limit files take -1 for unlimited.
fn v1_limit(limit: Option<u64>) -> String {
    limit.map_or_else(|| "-1".to_string(), |l| l.to_string())
}
