//! Reading usage counters from cgroup v1 interface files.

use nix::unistd::{sysconf, SysconfVar};

use super::V1Manager;
use crate::fs::{
    keyed_value, keyed_value_or_zero, read_limit_optional, read_optional, read_u64_optional,
};
use crate::{CgroupError, CgroupStats};

/// v1 reports "no limit" as the largest page-aligned i64; anything this large is unlimited.
const UNLIMITED_THRESHOLD: u64 = 0x7FFF_FFFF_FFFF_F000;

/// Reads the stats of the container's cgroup from every mounted hierarchy.
pub(super) fn read(manager: &V1Manager) -> Result<CgroupStats, CgroupError> {
    let mut stats = CgroupStats::default();
    if let Some(dir) = manager.subsystem_path("memory") {
        stats.memory_usage = read_u64_optional(&dir.join("memory.usage_in_bytes"))?.unwrap_or(0);
        stats.memory_max_usage =
            read_u64_optional(&dir.join("memory.max_usage_in_bytes"))?.unwrap_or(0);
        stats.memory_limit = read_u64_optional(&dir.join("memory.limit_in_bytes"))?
            .filter(|l| *l < UNLIMITED_THRESHOLD);
        let stat_path = dir.join("memory.stat");
        if let Some(content) = read_optional(&stat_path)? {
            stats.memory_cache = match keyed_value(&stat_path, &content, "total_cache")? {
                Some(v) => v,
                None => keyed_value(&stat_path, &content, "cache")?.unwrap_or(0),
            };
        }
        stats.oom_kill_count = keyed_value_or_zero(&dir.join("memory.oom_control"), "oom_kill")?;
    }
    if let Some(dir) = manager.subsystem_path("cpuacct") {
        stats.cpu_usage_ns = read_u64_optional(&dir.join("cpuacct.usage"))?.unwrap_or(0);
        let user = read_u64_optional(&dir.join("cpuacct.usage_user"))?;
        let system = read_u64_optional(&dir.join("cpuacct.usage_sys"))?;
        match (user, system) {
            (Some(user), Some(system)) => {
                stats.cpu_user_ns = user;
                stats.cpu_system_ns = system;
            }
            _ => {
                // Older kernels: cpuacct.stat in USER_HZ ticks.
                let ns_per_tick = ns_per_clock_tick();
                let stat = dir.join("cpuacct.stat");
                stats.cpu_user_ns = keyed_value_or_zero(&stat, "user")?.saturating_mul(ns_per_tick);
                stats.cpu_system_ns =
                    keyed_value_or_zero(&stat, "system")?.saturating_mul(ns_per_tick);
            }
        }
    }
    if let Some(dir) = manager.subsystem_path("pids") {
        stats.pids_current = read_u64_optional(&dir.join("pids.current"))?.unwrap_or(0);
        stats.pids_limit = read_limit_optional(&dir.join("pids.max"))?;
    }
    Ok(stats)
}

fn ns_per_clock_tick() -> u64 {
    let ticks = match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    };
    1_000_000_000 / ticks
}
