//! The v2 manager against this machine's real cgroup2 mount (on the hybrid CI hosts that is
//! `/sys/fs/cgroup/unified`, which has no controllers but supports procs, freeze and rmdir).

mod common;

use std::path::Path;

use nix::unistd::Pid;
use vmrun_cgroups::{mountinfo, CgroupManager, V2Manager};

fn v2_manager(name: &str) -> Option<V2Manager> {
    if !common::is_root() {
        vmrun_test_skip::report(format_args!("needs root to create cgroups"));
        return None;
    }
    if !mountinfo::cgroup_mounts().unwrap().iter().any(|m| m.v2) {
        vmrun_test_skip::report(format_args!("no cgroup2 filesystem is mounted"));
        return None;
    }
    Some(V2Manager::new(Path::new(&common::unique_path(name))).unwrap())
}

fn remove_parent(manager: &V2Manager) {
    if let Some(parent) = manager.path().parent() {
        let _ = std::fs::remove_dir(parent);
    }
}

#[test]
fn create_move_list_freeze_remove() {
    let Some(manager) = v2_manager("v2-basic") else {
        return;
    };
    let child = common::sleeper();
    let pid = Pid::from_raw(child.id() as i32);
    manager.apply(pid).unwrap();
    assert!(manager.path().is_dir());
    assert_eq!(manager.pids().unwrap(), vec![pid]);
    let own_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let relative = manager
        .path()
        .strip_prefix(manager.path().ancestors().nth(2).unwrap())
        .unwrap();
    assert!(
        own_cgroup
            .lines()
            .any(|l| l.starts_with("0::") && l.ends_with(relative.to_str().unwrap())),
        "{own_cgroup}"
    );

    let stats = manager.stats().unwrap();
    // Without controllers only cpu.stat exists; memory and pids read as 0 / unlimited.
    assert_eq!(stats.memory_limit, None);
    assert_eq!(stats.oom_kill_count, 0);

    manager.freeze().unwrap();
    let events = std::fs::read_to_string(manager.path().join("cgroup.events")).unwrap();
    assert!(events.contains("frozen 1"), "{events}");
    manager.thaw().unwrap();
    let events = std::fs::read_to_string(manager.path().join("cgroup.events")).unwrap();
    assert!(events.contains("frozen 0"), "{events}");

    common::kill_and_reap(child);
    manager.remove().unwrap();
    assert!(!manager.path().exists());
    remove_parent(&manager);
}

#[test]
fn remove_of_missing_cgroup_is_ok() {
    let Some(manager) = v2_manager("v2-never-created") else {
        return;
    };
    manager.remove().unwrap();
}
