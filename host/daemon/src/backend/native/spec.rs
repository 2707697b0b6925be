//! The OCI runtime spec of a container, from its docker config.
//!
//! Starts from runc's defaults (oci-spec's `Spec::default()`: mounts, namespaces, masked
//! and read-only paths) and applies what docker applies: the command, environment, user,
//! docker's default capabilities and seccomp profile, `no_new_privs`, resource limits, the
//! network namespace made by the network manager, and the per-container files and mounts.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceType, LinuxPids, LinuxResources, Mount, PosixRlimitBuilder, PosixRlimitType,
    Spec,
};

use crate::backend::{BackendError, ContainerSpec};

/// CPU period used for `--cpus`, as docker uses.
const CPU_PERIOD_US: u64 = 100_000;

/// The files the daemon writes for every container.
#[derive(Debug, Clone)]
pub struct EtcFiles {
    /// `/etc/hosts`.
    pub hosts: PathBuf,
    /// `/etc/hostname`.
    pub hostname: PathBuf,
    /// `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
}

/// Everything the runtime spec depends on.
pub struct SpecInputs<'a> {
    /// The container.
    pub container: &'a ContainerSpec,
    /// Mounted root filesystem.
    pub rootfs: &'a Path,
    /// Network namespace to join; `None` shares the host's.
    pub netns: Option<&'a Path>,
    /// Per-container files.
    pub files: &'a EtcFiles,
}

fn invalid(e: impl std::fmt::Display) -> BackendError {
    BackendError::Failed(format!("building the runtime spec: {e}"))
}

/// Build the spec.
pub fn build(inp: &SpecInputs<'_>) -> Result<Spec, BackendError> {
    let c = inp.container;
    let privileged = c.security.privileged;
    let mut spec = Spec::default();

    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(inp.rootfs.to_path_buf());
    root.set_readonly(Some(c.readonly_rootfs));
    spec.set_root(Some(root));
    spec.set_hostname(Some(c.hostname.clone()));

    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(c.process.args.clone()));
    process.set_env(Some(environment(c)));
    process.set_cwd(PathBuf::from(
        c.process
            .cwd
            .as_deref()
            .filter(|w| !w.is_empty())
            .unwrap_or("/"),
    ));
    process.set_terminal(Some(c.process.tty));
    process.set_no_new_privileges(Some(!privileged));
    let caps = capabilities(c, privileged)?;
    process.set_capabilities(Some(caps.clone()));
    // Like containerd: a generous open-file limit, within what this kernel allows.
    let limit = nofile_limit();
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(limit)
        .soft(limit)
        .build()
        .map_err(invalid)?;
    process.set_rlimits(Some(vec![nofile]));
    spec.set_process(Some(process));

    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_cgroups_path(Some(super::cgroup_path(&c.id)));
    linux.set_namespaces(Some(namespaces(inp.netns)));
    linux.set_resources(Some(resources(c)?));
    if privileged {
        linux.set_masked_paths(Some(Vec::new()));
        linux.set_readonly_paths(Some(Vec::new()));
    } else {
        let names: Vec<String> = caps
            .bounding()
            .iter()
            .flatten()
            .map(|c| format!("CAP_{c}"))
            .collect();
        linux.set_seccomp(Some(vmrun_security::seccomp::docker_default_profile(
            &names,
        )));
    }
    spec.set_linux(Some(linux));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    if inp.netns.is_none() {
        // Sharing the host's network namespace: its sysfs view is fine to show.
        mounts.retain(|m| m.destination() != Path::new("/sys/fs/cgroup"));
    }
    resize_shm(&mut mounts, c.resources.shm_size);
    // The user's mounts and the daemon's /etc files, parents before children (as dockerd
    // sorts them): a volume over /etc must not hide /etc/hosts. A user mount at one of
    // those paths replaces the daemon's file.
    let mut tail: Vec<Mount> = c
        .mounts
        .iter()
        .map(|m| bind(&m.source, &m.destination, m.read_only))
        .collect();
    for (dest, src) in [
        ("/etc/hosts", &inp.files.hosts),
        ("/etc/hostname", &inp.files.hostname),
        ("/etc/resolv.conf", &inp.files.resolv_conf),
    ] {
        if !c
            .mounts
            .iter()
            .any(|m| Path::new(&m.destination) == Path::new(dest))
        {
            tail.push(bind(src, dest, false));
        }
    }
    tail.sort_by_key(|m| m.destination().components().count());
    mounts.extend(tail);
    spec.set_mounts(Some(mounts));
    Ok(spec)
}

/// The daemon's own hard open-file limit, at most 1048576: raising it further needs
/// CAP_SYS_RESOURCE, which the daemon may not have.
fn nofile_limit() -> u64 {
    use nix::sys::resource::{getrlimit, Resource};
    let hard = getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(1024);
    hard.min(1_048_576)
}

fn environment(c: &ContainerSpec) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut set = |kv: &str| {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.to_string());
    };
    set("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    set(&format!("HOSTNAME={}", c.hostname));
    for kv in &c.process.env {
        set(kv);
    }
    if c.process.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    env
}

fn capabilities(c: &ContainerSpec, privileged: bool) -> Result<LinuxCapabilities, BackendError> {
    use std::collections::HashSet;

    let parse = |name: &str| -> Result<Option<Capability>, BackendError> {
        let upper = name.to_ascii_uppercase();
        if upper == "ALL" || upper == "CAP_ALL" {
            return Ok(None);
        }
        // oci-spec names capabilities without the `CAP_` prefix.
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        Capability::from_str(bare)
            .map(Some)
            .map_err(|_| BackendError::BadRequest(format!("unknown capability: \"{name}\"")))
    };
    let all: HashSet<Capability> = all_capabilities();
    let mut set: HashSet<Capability> = if privileged {
        all.clone()
    } else {
        let mut s = HashSet::new();
        for name in vmrun_security::capabilities::DOCKER_DEFAULT {
            if let Some(c) = parse(name)? {
                s.insert(c);
            }
        }
        s
    };
    for name in &c.security.cap_add {
        match parse(name)? {
            Some(c) => {
                set.insert(c);
            }
            None => set.clone_from(&all),
        }
    }
    for name in &c.security.cap_drop {
        match parse(name)? {
            Some(c) => {
                set.remove(&c);
            }
            None => set.clear(),
        }
    }
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    caps.set_inheritable(Some(HashSet::new()));
    caps.set_ambient(Some(HashSet::new()));
    Ok(caps)
}

fn all_capabilities() -> std::collections::HashSet<Capability> {
    vmrun_security::capabilities::ALL
        .iter()
        .filter_map(|n| Capability::from_str(n.trim_start_matches("CAP_")).ok())
        .collect()
}

fn namespaces(netns: Option<&Path>) -> Vec<LinuxNamespace> {
    let mut out = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(typ);
        out.push(ns);
    }
    if let Some(path) = netns {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::Network);
        ns.set_path(Some(path.to_path_buf()));
        out.push(ns);
    }
    out
}

fn resources(c: &ContainerSpec) -> Result<LinuxResources, BackendError> {
    linux_resources(&c.resources)
}

/// The cgroup limits a `docker update` sets: [`linux_resources`] of the changes, with a
/// pids limit of 0 or -1 meaning unlimited.
pub fn updated_resources(
    changed: &crate::backend::Resources,
) -> Result<LinuxResources, BackendError> {
    let mut resources = linux_resources(changed)?;
    if changed.pids_limit.is_some_and(|l| l <= 0) {
        let mut pids = oci_spec::runtime::LinuxPids::default();
        pids.set_limit(-1);
        resources.set_pids(Some(pids));
    }
    Ok(resources)
}

/// The cgroup settings of `hc` (unset fields are left alone).
pub fn linux_resources(hc: &crate::backend::Resources) -> Result<LinuxResources, BackendError> {
    let mut r = LinuxResources::default();
    if let Some(mem) = hc.memory.filter(|m| *m > 0) {
        if mem < 6 * 1024 * 1024 {
            return Err(BackendError::BadRequest(
                "Minimum memory limit allowed is 6MB".into(),
            ));
        }
        let mut m = LinuxMemoryBuilder::default();
        m = m.limit(mem);
        // Docker's default: swap limit = 2 × memory; we give no swap beyond the limit,
        // so a container that outgrows its memory is OOM-killed, not swapped.
        let swap = match hc.memory_swap {
            Some(s) if s > 0 => s,
            Some(-1) => -1,
            _ => mem,
        };
        m = m.swap(swap);
        r.set_memory(Some(m.build().map_err(invalid)?));
    }
    let mut cpu = LinuxCpu::default();
    let mut any_cpu = false;
    if let Some(nano) = hc.nano_cpus.filter(|n| *n > 0) {
        let quota = (nano as u128 * CPU_PERIOD_US as u128 / 1_000_000_000) as i64;
        cpu.set_quota(Some(quota.max(1000)));
        cpu.set_period(Some(CPU_PERIOD_US));
        any_cpu = true;
    }
    if let Some(shares) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu.set_shares(Some(shares as u64));
        any_cpu = true;
    }
    if let Some(quota) = hc.cpu_quota.filter(|q| *q > 0) {
        cpu.set_quota(Some(quota));
        cpu.set_period(Some(
            hc.cpu_period
                .filter(|p| *p > 0)
                .unwrap_or(CPU_PERIOD_US as i64) as u64,
        ));
        any_cpu = true;
    }
    if let Some(cpus) = &hc.cpuset_cpus {
        cpu.set_cpus(Some(cpus.clone()));
        any_cpu = true;
    }
    if let Some(mems) = &hc.cpuset_mems {
        cpu.set_mems(Some(mems.clone()));
        any_cpu = true;
    }
    if any_cpu {
        r.set_cpu(Some(cpu));
    }
    if let Some(limit) = hc.pids_limit.filter(|l| *l > 0) {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    Ok(r)
}

fn resize_shm(mounts: &mut [Mount], shm_size: Option<i64>) {
    let size = shm_size.filter(|s| *s > 0).unwrap_or(64 * 1024 * 1024);
    for m in mounts.iter_mut() {
        if m.destination() == Path::new("/dev/shm") {
            let mut opts: Vec<String> = m
                .options()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|o| !o.starts_with("size="))
                .collect();
            opts.push(format!("size={size}"));
            m.set_options(Some(opts));
        }
    }
}

/// An OCI bind mount of `source` at `destination`.
pub(crate) fn bind(source: &Path, destination: &str, read_only: bool) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(source.to_path_buf()));
    let mut opts = vec!["rbind".to_string(), "rprivate".to_string()];
    opts.push(if read_only { "ro" } else { "rw" }.to_string());
    m.set_options(Some(opts));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_parse() {
        assert_eq!(all_capabilities().len(), 41);
        let caps: Vec<Capability> = vmrun_security::capabilities::DOCKER_DEFAULT
            .iter()
            .filter_map(|n| Capability::from_str(n.trim_start_matches("CAP_")).ok())
            .collect();
        assert_eq!(
            caps.len(),
            vmrun_security::capabilities::DOCKER_DEFAULT.len()
        );
    }
}
