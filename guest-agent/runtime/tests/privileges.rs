//! Seccomp, no_new_privs, capabilities across a user switch, and the
//! container's cgroup (membership, limits, stats).

mod common;

use common::{can_run, output_file, run, spec, wait, Bundle};
use serde_json::{json, Value};

/// `Key:\tvalue` lines of `/proc/self/status` the scripts print.
const STATUS: &str = "grep -E '^(Seccomp|NoNewPrivs|CapPrm|CapEff|CapAmb):' /proc/self/status";

/// The value of `key` in the printed status lines.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} missing in {out}"))
}

/// Docker's default seccomp profile for the spec's bounding capabilities.
fn default_seccomp(v: &Value) -> Value {
    let caps: Vec<String> = v["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    serde_json::to_value(vmrun_security::seccomp::docker_default_profile(&caps)).unwrap()
}

#[test]
fn seccomp_without_no_new_privileges_loads_before_capabilities_drop() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    // Capabilities without CAP_SYS_ADMIN and no no_new_privs: the filter
    // only loads while the process still has all capabilities.
    let s = spec("seccomp-nnp-off", &["sh", "-c", STATUS], |v| {
        v["process"]["noNewPrivileges"] = json!(false);
        v["linux"]["seccomp"] = default_seccomp(v);
    });
    let (code, out) = run(&b, "seccomp-nnp-off", &s);
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "Seccomp"), "2", "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "0", "{out}");
    assert_eq!(field(&out, "CapEff"), "00000000200004e1", "{out}");

    // The same for a non-root user (setresuid after the filter).
    let s = spec("seccomp-nnp-off-user", &["sh", "-c", STATUS], |v| {
        v["process"]["noNewPrivileges"] = json!(false);
        v["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        v["linux"]["seccomp"] = default_seccomp(v);
    });
    let (code, out) = run(&b, "seccomp-nnp-off-user", &s);
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "Seccomp"), "2", "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "0", "{out}");
}

#[test]
fn seccomp_with_no_new_privileges_loads_last() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let script = format!("{STATUS}; mkdir /d && echo mkdir-ok");
    let s = spec("seccomp-nnp-on", &["sh", "-c", &script], |v| {
        v["process"]["noNewPrivileges"] = json!(true);
        v["linux"]["seccomp"] = default_seccomp(v);
    });
    let (code, out) = run(&b, "seccomp-nnp-on", &s);
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "Seccomp"), "2", "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "1", "{out}");
    assert!(out.contains("mkdir-ok"), "{out}");
}

#[test]
fn seccomp_errno_rule_is_enforced() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    // Default allow, mkdir/mkdirat fail with EPERM; no_new_privs off.
    let s = spec(
        "seccomp-rule",
        &["sh", "-c", "mkdir /d 2>&1 || echo mkdir-denied"],
        |v| {
            v["process"]["noNewPrivileges"] = json!(false);
            v["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
            });
        },
    );
    let (code, out) = run(&b, "seccomp-rule", &s);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("mkdir-denied"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
}

#[test]
fn non_root_user_keeps_only_the_capabilities_the_spec_asks() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    // No ambient set: a non-root process ends up with no capabilities.
    let s = spec("caps-user", &["sh", "-c", STATUS], |v| {
        v["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let (code, out) = run(&b, "caps-user", &s);
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "CapEff"), "0000000000000000", "{out}");
    assert_eq!(field(&out, "CapPrm"), "0000000000000000", "{out}");

    // Ambient CAP_NET_BIND_SERVICE: kept across setresuid and exec.
    let s = spec("caps-user-ambient", &["sh", "-c", STATUS], |v| {
        v["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        let caps = &mut v["process"]["capabilities"];
        caps["inheritable"] = json!(["CAP_NET_BIND_SERVICE"]);
        caps["ambient"] = json!(["CAP_NET_BIND_SERVICE"]);
    });
    let (code, out) = run(&b, "caps-user-ambient", &s);
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "CapAmb"), "0000000000000400", "{out}");
    assert_eq!(field(&out, "CapEff"), "0000000000000400", "{out}");

    // Root gets exactly the listed set.
    let s = spec("caps-root", &["sh", "-c", STATUS], |_| {});
    let (code, out) = run(&b, "caps-root", &s);
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "CapEff"), "00000000200004e1", "{out}");
}

/// The controllers of a `/proc/<pid>/cgroup` line (`""` for the v2 line).
fn line_controllers(line: &str) -> impl Iterator<Item = &str> {
    line.split(':').nth(1).unwrap_or("-").split(',')
}

#[test]
fn cgroup_membership_limits_and_stats() {
    if !can_run() {
        return;
    }
    let b = Bundle::new();
    let rt = b.runtime();
    let id = "cgroup-limits";
    let s = spec(id, &["sleep", "30"], |v| {
        v["linux"]["resources"] = json!({
            "memory": {"limit": 64 * 1024 * 1024},
            "pids": {"limit": 20}
        });
    });
    let (_file, stdio) = output_file();
    let mut c = rt.create(id, b.path(), &s, stdio).unwrap();
    // The init is in the container's cgroup in every hierarchy it joined.
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap();
    let v1 = cgroups.lines().any(|l| !l.starts_with("0::"));
    let needed: &[&str] = if v1 {
        &["memory", "pids", "freezer", "cpuacct"]
    } else {
        &[""]
    };
    for &controller in needed {
        let line = cgroups
            .lines()
            .find(|l| line_controllers(l).any(|c| c == controller))
            .unwrap_or_else(|| panic!("no {controller:?} line in {cgroups}"));
        assert!(line.ends_with("/vmrun-test/cgroup-limits"), "{cgroups}");
    }
    rt.start(&mut c).unwrap();
    let stats = rt.stats(id).unwrap();
    assert_eq!(stats.memory_limit, Some(64 * 1024 * 1024), "{stats:?}");
    assert_eq!(stats.pids_limit, Some(20), "{stats:?}");
    assert!(stats.pids_current >= 1, "{stats:?}");
    assert!(stats.memory_usage > 0, "{stats:?}");

    // exec'd processes join it too.
    let mut process = s.process().clone().unwrap();
    process.set_args(Some(vec!["cat".into(), "/proc/self/cgroup".into()]));
    let (file, stdio) = output_file();
    let exec = rt.exec(id, &process, stdio).unwrap();
    assert_eq!(wait(exec.pid), 0);
    let inside = std::fs::read_to_string(file.path()).unwrap();
    // In its cgroup namespace the container's cgroup is the root.
    for &controller in needed {
        let line = inside
            .lines()
            .find(|l| line_controllers(l).any(|c| c == controller))
            .unwrap_or_else(|| panic!("no {controller:?} line in {inside}"));
        assert!(line.ends_with(":/"), "exec sees: {inside}");
    }

    rt.kill(id, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(wait(c.pid), 128 + 9);
    rt.delete(id, false).unwrap();
}
