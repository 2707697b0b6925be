//! The v1 manager against this machine's real v1 hierarchies (needs root and a v1 or hybrid
//! layout). Covers limits, stats, the OOM killer, pids.max and the freezer.

mod common;

use std::fs;
use std::path::Path;

use common::{ChildTask, Gated};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};
use vmrun_cgroups::{detect, CgroupManager, CgroupVersion, V1Manager};

const MIB: i64 = 1024 * 1024;

fn v1_manager(name: &str) -> Option<V1Manager> {
    if !common::is_root() {
        vmrun_test_skip::report(format_args!("needs root to create cgroups"));
        return None;
    }
    if detect().unwrap() != CgroupVersion::V1 {
        vmrun_test_skip::report(format_args!("this machine does not use cgroup v1"));
        return None;
    }
    Some(V1Manager::new(Path::new(&common::unique_path(name))).unwrap())
}

fn cleanup(manager: &V1Manager) {
    manager.remove().unwrap();
    for subsystem in vmrun_cgroups::v1::SUBSYSTEMS {
        if let Some(dir) = manager.subsystem_path(subsystem) {
            assert!(!dir.exists(), "{} still exists", dir.display());
            let _ = fs::remove_dir(dir.parent().unwrap());
        }
    }
}

fn memory_limit(bytes: i64) -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(bytes).build().unwrap())
        .build()
        .unwrap()
}

fn read_trimmed(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap().trim().to_string()
}

#[test]
fn limits_stats_and_membership() {
    let Some(manager) = v1_manager("v1-limits") else {
        return;
    };
    let child = common::sleeper();
    let pid = Pid::from_raw(child.id() as i32);
    manager.apply(pid).unwrap();
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 * MIB)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(50i64).build().unwrap())
        .build()
        .unwrap();
    manager.set(&resources).unwrap();

    let memory = manager.subsystem_path("memory").unwrap();
    assert_eq!(
        read_trimmed(memory.join("memory.limit_in_bytes")),
        (64 * MIB).to_string()
    );
    if memory.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            read_trimmed(memory.join("memory.memsw.limit_in_bytes")),
            (64 * MIB).to_string()
        );
    }
    let cpu = manager.subsystem_path("cpu").unwrap();
    assert_eq!(read_trimmed(cpu.join("cpu.shares")), "512");
    assert_eq!(read_trimmed(cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read_trimmed(cpu.join("cpu.cfs_period_us")), "100000");

    // Raising the limit must reorder the memsw write; lowering again too.
    manager.set(&memory_limit(256 * MIB)).unwrap();
    assert_eq!(
        read_trimmed(memory.join("memory.limit_in_bytes")),
        (256 * MIB).to_string()
    );
    manager.set(&memory_limit(32 * MIB)).unwrap();
    assert_eq!(
        read_trimmed(memory.join("memory.limit_in_bytes")),
        (32 * MIB).to_string()
    );

    assert!(manager.pids().unwrap().contains(&pid));
    let stats = manager.stats().unwrap();
    assert_eq!(stats.memory_limit, Some(32 * MIB as u64));
    assert_eq!(stats.pids_limit, Some(50));
    assert!(stats.pids_current >= 1, "{stats:?}");
    assert_eq!(stats.oom_kill_count, 0);

    // Unlimited reads back as None.
    manager.set(&memory_limit(-1)).unwrap();
    assert_eq!(manager.stats().unwrap().memory_limit, None);

    common::kill_and_reap(child);
    cleanup(&manager);
}

#[test]
fn oom_kills_a_process_over_its_limit() {
    let Some(manager) = v1_manager("v1-oom") else {
        return;
    };
    let child = Gated::spawn(ChildTask::TouchMemory(64 * MIB as usize));
    manager.apply(child.pid).unwrap();
    manager.set(&memory_limit(16 * MIB)).unwrap();
    assert_eq!(manager.stats().unwrap().oom_kill_count, 0);
    child.release();
    match child.wait() {
        WaitStatus::Signaled(_, Signal::SIGKILL, _) => {}
        other => panic!("expected the OOM killer's SIGKILL, got {other:?}"),
    }
    let stats = manager.stats().unwrap();
    assert!(stats.oom_kill_count >= 1, "{stats:?}");
    assert!(stats.memory_max_usage >= 15 * MIB as u64, "{stats:?}");
    drop(child);
    cleanup(&manager);
}

#[test]
fn within_limit_survives() {
    let Some(manager) = v1_manager("v1-no-oom") else {
        return;
    };
    let child = Gated::spawn(ChildTask::TouchMemory(8 * MIB as usize));
    manager.apply(child.pid).unwrap();
    manager.set(&memory_limit(64 * MIB)).unwrap();
    child.release();
    assert_eq!(child.wait(), WaitStatus::Exited(child.pid, 0));
    assert_eq!(manager.stats().unwrap().oom_kill_count, 0);
    drop(child);
    cleanup(&manager);
}

#[test]
fn pids_max_stops_forks() {
    let Some(manager) = v1_manager("v1-pids") else {
        return;
    };
    let child = Gated::spawn(ChildTask::TryFork);
    manager.apply(child.pid).unwrap();
    let limit = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(1i64).build().unwrap())
        .build()
        .unwrap();
    manager.set(&limit).unwrap();
    assert_eq!(manager.stats().unwrap().pids_current, 1);
    child.release();
    // Exit code 0: fork failed with EAGAIN.
    assert_eq!(child.wait(), WaitStatus::Exited(child.pid, 0));
    drop(child);
    cleanup(&manager);
}

#[test]
fn freezer_freezes_and_thaws() {
    let Some(manager) = v1_manager("v1-freeze") else {
        return;
    };
    if manager.subsystem_path("freezer").is_none() {
        vmrun_test_skip::report(format_args!("freezer hierarchy not mounted"));
        return;
    }
    let child = common::sleeper();
    manager.apply(Pid::from_raw(child.id() as i32)).unwrap();
    manager.freeze().unwrap();
    let state = manager
        .subsystem_path("freezer")
        .unwrap()
        .join("freezer.state");
    assert_eq!(read_trimmed(&state), "FROZEN");
    manager.thaw().unwrap();
    assert_eq!(read_trimmed(&state), "THAWED");
    common::kill_and_reap(child);
    cleanup(&manager);
}
