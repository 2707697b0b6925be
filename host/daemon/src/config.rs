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
    /// Where containers run unless they ask (`--mode`).
    pub mode: DaemonMode,
    /// Size of the shared VM (`--vm-cpus`, `--vm-memory`, `--vm-disk-size`).
    pub shared_vm: SharedVmSize,
    /// Forward every TCP port a container in a VM listens on to the same port on the
    /// host's `127.0.0.1` as it appears (`--auto-forward`; per container: `-P`).
    pub auto_forward: bool,
    /// Deadline of one call to a guest agent (`--vm-agent-timeout`): a hung guest fails
    /// the command after it instead of hanging it.
    pub vm_agent_timeout: std::time::Duration,
}

/// Deadline of one guest-agent call unless `--vm-agent-timeout` says otherwise.
pub const DEFAULT_VM_AGENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where a daemon runs containers that do not ask for an isolation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DaemonMode {
    /// On this host's kernel (Linux only).
    #[default]
    Native,
    /// All in one shared Linux VM, as Docker Desktop, OrbStack and Colima do.
    Vm,
}

impl std::str::FromStr for DaemonMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(DaemonMode::Native),
            "vm" => Ok(DaemonMode::Vm),
            other => Err(format!("unknown mode {other:?}: expected native or vm")),
        }
    }
}

/// The shared VM's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedVmSize {
    /// vCPUs.
    pub cpus: u8,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Data disk in GiB (a sparse file: only what is written takes space).
    pub disk_gib: u32,
}

impl Default for SharedVmSize {
    fn default() -> Self {
        SharedVmSize {
            cpus: 2,
            memory_mib: 1024,
            disk_gib: 64,
        }
    }
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
            mode: DaemonMode::default(),
            shared_vm: SharedVmSize::default(),
            auto_forward: false,
            vm_agent_timeout: DEFAULT_VM_AGENT_TIMEOUT,
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
