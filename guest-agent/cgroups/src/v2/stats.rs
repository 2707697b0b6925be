//! Reading usage counters from cgroup v2 interface files.

use std::path::Path;

use crate::fs::{keyed_value_or_zero, read_limit_optional, read_u64_optional};
use crate::{CgroupError, CgroupStats};

/// Reads the stats of the cgroup at `dir`. Files of controllers that are not enabled read as 0.
pub(super) fn read(dir: &Path) -> Result<CgroupStats, CgroupError> {
    let cpu_stat = dir.join("cpu.stat");
    Ok(CgroupStats {
        memory_usage: read_u64_optional(&dir.join("memory.current"))?.unwrap_or(0),
        memory_max_usage: read_u64_optional(&dir.join("memory.peak"))?.unwrap_or(0),
        memory_limit: read_limit_optional(&dir.join("memory.max"))?,
        memory_cache: keyed_value_or_zero(&dir.join("memory.stat"), "file")?,
        cpu_usage_ns: keyed_value_or_zero(&cpu_stat, "usage_usec")?.saturating_mul(1000),
        cpu_user_ns: keyed_value_or_zero(&cpu_stat, "user_usec")?.saturating_mul(1000),
        cpu_system_ns: keyed_value_or_zero(&cpu_stat, "system_usec")?.saturating_mul(1000),
        pids_current: read_u64_optional(&dir.join("pids.current"))?.unwrap_or(0),
        pids_limit: read_limit_optional(&dir.join("pids.max"))?,
        oom_kill_count: keyed_value_or_zero(&dir.join("memory.events"), "oom_kill")?,
    })
}
