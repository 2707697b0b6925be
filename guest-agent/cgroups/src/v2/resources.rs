//! Writing OCI resources to cgroup v2 interface files.

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use crate::convert::{self, cpu_max, shares_to_weight, swap_max, v2_limit};
use crate::fs::write_file;
use crate::CgroupError;

/// Applies memory, cpu, cpuset and pids limits to the cgroup at `dir`.
pub(super) fn apply(dir: &Path, resources: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(memory) = resources.memory() {
        if let Some(limit) = memory.limit() {
            let bytes = convert::memory_limit("memory.limit", limit)?;
            write_file(&dir.join("memory.max"), &v2_limit(bytes))?;
        }
        if let Some(reservation) = memory.reservation() {
            let bytes = convert::memory_limit("memory.reservation", reservation)?;
            write_file(&dir.join("memory.low"), &bytes.unwrap_or(0).to_string())?;
        }
        if let Some(swap) = swap_max(memory.limit(), memory.swap())? {
            let file = dir.join("memory.swap.max");
            if file.exists() {
                write_file(&file, &swap)?;
            } else if memory.swap().is_some() {
                // Asked for explicitly, but the kernel has no swap accounting.
                tracing::warn!(path = %file.display(), "no swap accounting; swap limit ignored");
            }
        }
    }
    if let Some(cpu) = resources.cpu() {
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            write_file(
                &dir.join("cpu.weight"),
                &shares_to_weight(shares).to_string(),
            )?;
        }
        if let Some(line) = cpu_max(cpu.quota(), cpu.period()) {
            write_file(&dir.join("cpu.max"), &line)?;
        }
        if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
            write_file(&dir.join("cpuset.cpus"), cpus)?;
        }
        if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
            write_file(&dir.join("cpuset.mems"), mems)?;
        }
    }
    if let Some(pids) = resources.pids() {
        let limit = convert::pids_limit(pids.limit());
        write_file(&dir.join("pids.max"), &v2_limit(limit))?;
    }
    Ok(())
}
