//! The v2 manager against a temporary directory laid out like a cgroup2 filesystem.

use std::fs;
use std::path::Path;

use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};
use vmrun_cgroups::{CgroupError, CgroupManager, V2Manager};

const LEAF_FILES: &[(&str, &str)] = &[
    ("cgroup.controllers", "cpu memory pids\n"),
    ("cgroup.subtree_control", ""),
    ("cgroup.procs", ""),
    ("cgroup.freeze", "0\n"),
    ("cgroup.events", "populated 1\nfrozen 1\n"),
    ("memory.max", "max\n"),
    ("memory.swap.max", "max\n"),
    ("memory.low", "0\n"),
    ("memory.current", "1234567\n"),
    ("memory.peak", "2345678\n"),
    ("memory.stat", "anon 100\nfile 4096\nkernel 8\n"),
    ("memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n"),
    ("cpu.weight", "100\n"),
    ("cpu.max", "max 100000\n"),
    (
        "cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
    ),
    ("pids.max", "max\n"),
    ("pids.current", "3\n"),
];

fn layout(root: &Path) {
    for dir in [root.to_path_buf(), root.join("vmrun")] {
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
    }
    let leaf = root.join("vmrun/c1");
    fs::create_dir_all(&leaf).unwrap();
    for (name, content) in LEAF_FILES {
        fs::write(leaf.join(name), content).unwrap();
    }
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap()
}

fn resources() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(16 * 1024 * 1024i64)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(1024u64)
                .quota(50_000i64)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(10i64).build().unwrap())
        .build()
        .unwrap()
}

#[test]
fn apply_enables_controllers_and_moves_pid() {
    let tmp = tempfile::tempdir().unwrap();
    layout(tmp.path());
    let manager = V2Manager::with_root(tmp.path(), Path::new("/vmrun/c1")).unwrap();
    manager.apply(Pid::from_raw(4242)).unwrap();
    assert_eq!(read(tmp.path().join("vmrun/c1/cgroup.procs")), "4242");
    assert_eq!(
        read(tmp.path().join("cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    assert_eq!(
        read(tmp.path().join("vmrun/cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    assert_eq!(manager.path(), tmp.path().join("vmrun/c1"));
}

#[test]
fn set_writes_v2_values() {
    let tmp = tempfile::tempdir().unwrap();
    layout(tmp.path());
    let manager = V2Manager::with_root(tmp.path(), Path::new("/vmrun/c1")).unwrap();
    manager.set(&resources()).unwrap();
    let leaf = tmp.path().join("vmrun/c1");
    assert_eq!(read(leaf.join("memory.max")), "16777216");
    assert_eq!(read(leaf.join("memory.swap.max")), "0");
    assert_eq!(read(leaf.join("cpu.weight")), "39");
    assert_eq!(read(leaf.join("cpu.max")), "50000 100000");
    assert_eq!(read(leaf.join("pids.max")), "10");
}

#[test]
fn stats_read_v2_files() {
    let tmp = tempfile::tempdir().unwrap();
    layout(tmp.path());
    let manager = V2Manager::with_root(tmp.path(), Path::new("/vmrun/c1")).unwrap();
    let stats = manager.stats().unwrap();
    assert_eq!(stats.memory_usage, 1_234_567);
    assert_eq!(stats.memory_max_usage, 2_345_678);
    assert_eq!(stats.memory_limit, None);
    assert_eq!(stats.memory_cache, 4096);
    assert_eq!(stats.cpu_usage_ns, 1_500_000);
    assert_eq!(stats.cpu_user_ns, 1_000_000);
    assert_eq!(stats.cpu_system_ns, 500_000);
    assert_eq!(stats.pids_current, 3);
    assert_eq!(stats.pids_limit, None);
    assert_eq!(stats.oom_kill_count, 2);
    fs::write(tmp.path().join("vmrun/c1/pids.max"), "7\n").unwrap();
    fs::write(tmp.path().join("vmrun/c1/memory.max"), "1048576\n").unwrap();
    let stats = manager.stats().unwrap();
    assert_eq!(stats.pids_limit, Some(7));
    assert_eq!(stats.memory_limit, Some(1_048_576));
}

#[test]
fn pids_and_freeze() {
    let tmp = tempfile::tempdir().unwrap();
    layout(tmp.path());
    let leaf = tmp.path().join("vmrun/c1");
    fs::write(leaf.join("cgroup.procs"), "12\n34\n").unwrap();
    let manager = V2Manager::with_root(tmp.path(), Path::new("vmrun/c1")).unwrap();
    assert_eq!(
        manager.pids().unwrap(),
        vec![Pid::from_raw(12), Pid::from_raw(34)]
    );
    manager.freeze().unwrap();
    assert_eq!(read(leaf.join("cgroup.freeze")), "1");
    fs::write(leaf.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    manager.thaw().unwrap();
    assert_eq!(read(leaf.join("cgroup.freeze")), "0");
}

#[test]
fn errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    layout(tmp.path());
    let leaf = tmp.path().join("vmrun/c1");
    fs::remove_file(leaf.join("pids.max")).unwrap();
    let manager = V2Manager::with_root(tmp.path(), Path::new("/vmrun/c1")).unwrap();
    let err = manager.set(&resources()).unwrap_err();
    match &err {
        CgroupError::Io { path, .. } => assert_eq!(path, &leaf.join("pids.max")),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("pids.max"), "{err}");

    fs::write(leaf.join("cpu.stat"), "usage_usec lots\n").unwrap();
    let err = manager.stats().unwrap_err();
    assert!(matches!(err, CgroupError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("cpu.stat"), "{err}");
}

#[test]
fn rejects_bad_paths_and_values() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(V2Manager::with_root(tmp.path(), Path::new("/vmrun/../etc")).is_err());
    assert!(V2Manager::with_root(tmp.path(), Path::new("/")).is_err());
    layout(tmp.path());
    let manager = V2Manager::with_root(tmp.path(), Path::new("/vmrun/c1")).unwrap();
    let bad = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(-5i64).build().unwrap())
        .build()
        .unwrap();
    assert!(matches!(
        manager.set(&bad),
        Err(CgroupError::InvalidResource { .. })
    ));
}

#[test]
fn remove_deletes_an_empty_cgroup_dir() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("vmrun/c2")).unwrap();
    let manager = V2Manager::with_root(tmp.path(), Path::new("/vmrun/c2")).unwrap();
    manager.remove().unwrap();
    assert!(!tmp.path().join("vmrun/c2").exists());
    // Removing again is fine.
    manager.remove().unwrap();
}
