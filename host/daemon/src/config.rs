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
        }
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
