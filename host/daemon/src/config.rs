//! Where the daemon keeps things.

use std::path::PathBuf;

/// Paths and options of one daemon.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// API socket.
    pub socket: PathBuf,
    /// Persistent state: containers, images, volumes, networks.
    pub data_root: PathBuf,
    /// Runtime state that dies with the machine: shim sockets, runtime state, netns.
    pub exec_root: PathBuf,
    /// The `vmrun-shim` binary.
    pub shim_path: PathBuf,
    /// Bridge device of the default network (default `vmrun0`).
    pub bridge: Option<String>,
    /// Subnet of the default network (default: the first free candidate).
    pub bridge_subnet: Option<vmrun_network::Ipv4Net>,
    /// Insecure registries, Docker Hub mirrors and per-registry TLS material.
    pub registry_hosts: vmrun_images::RegistryHosts,
    /// Which monitor boots microVMs (`--vm-backend`).
    pub vm_backend: vmrun_vm::BackendChoice,
    /// The `vmrun-vmm` binary (default: next to vmrund, then PATH).
    pub vmm_binary: Option<PathBuf>,
    /// The guest kernel of containers in microVMs (`--vm-kernel`; default: the newest
    /// `vmlinux` that `kernel-config/build.sh` left in the cache).
    pub vm_kernel: Option<PathBuf>,
    /// The agent initramfs of containers in microVMs (`--vm-initrd`; default: the newest
    /// one `installer/agent-initramfs.sh` left in the cache).
    pub vm_initrd: Option<PathBuf>,
}

impl DaemonConfig {
    /// Defaults for root, with the shim looked up next to the running executable.
    pub fn with_defaults() -> Self {
        DaemonConfig {
            socket: PathBuf::from("/run/vmrun/docker.sock"),
            data_root: PathBuf::from("/var/lib/vmrun"),
            exec_root: PathBuf::from("/run/vmrun"),
            shim_path: default_shim_path(),
            bridge: None,
            bridge_subnet: None,
            registry_hosts: registry_hosts_from_env(),
            vm_backend: vmrun_vm::BackendChoice::Auto,
            vmm_binary: None,
            vm_kernel: None,
            vm_initrd: None,
        }
    }

    /// Adds `--insecure-registry` and `--registry-mirror` entries to the registry
    /// settings and, when any are given, replaces the certs dirs with `certs_dirs`.
    /// A malformed entry is an error naming it.
    pub fn apply_registry_flags(
        &mut self,
        insecure: Vec<String>,
        mirrors: Vec<String>,
        certs_dirs: Vec<PathBuf>,
    ) -> Result<(), String> {
        let hosts = &mut self.registry_hosts;
        hosts.insecure.extend(insecure);
        hosts.mirrors.extend(mirrors);
        if !certs_dirs.is_empty() {
            hosts.certs_dirs = certs_dirs;
        }
        hosts.validate()
    }

    /// Directory of one container's persistent files.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.data_root.join("containers").join(id)
    }
}

fn default_shim_path() -> PathBuf {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
    {
        let candidate = dir.join("vmrun-shim");
        if candidate.exists() {
            return candidate;
        }
    }
    PathBuf::from("vmrun-shim")
}

/// `$VMRUN_INSECURE_REGISTRIES` (comma-separated `host:port` or CIDRs) as registry
/// settings, with the default certs dirs (`/etc/vmrun/certs.d`, `/etc/docker/certs.d`).
fn registry_hosts_from_env() -> vmrun_images::RegistryHosts {
    let insecure = std::env::var("VMRUN_INSECURE_REGISTRIES")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    vmrun_images::RegistryHosts {
        insecure,
        ..vmrun_images::RegistryHosts::with_default_certs_dirs()
    }
}
