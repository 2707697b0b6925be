//! The files of one container on this host, and the processes of its execs.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use super::spec::EtcFiles;
use crate::backend::{BackendError, ContainerSpec, ExecSpec, GraphDriver};
use crate::config::DaemonConfig;

/// Where everything of one container lives.
#[derive(Debug, Clone)]
pub struct ContainerPaths {
    /// `<data-root>/containers/<id>`.
    pub dir: PathBuf,
    /// Writable overlay layer (survives stop/start).
    pub diff: PathBuf,
    /// overlayfs work dir.
    pub work: PathBuf,
    /// Mount point of the root filesystem.
    pub rootfs: PathBuf,
    /// OCI bundle dir.
    pub bundle: PathBuf,
    /// `/etc/hosts`.
    pub hosts: PathBuf,
    /// `/etc/hostname`.
    pub hostname: PathBuf,
    /// `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// json-file log.
    pub log: PathBuf,
    /// The shim's exit record of the last run.
    pub exit_file: PathBuf,
    /// The shim's config.
    pub shim_config: PathBuf,
    /// The shim's own diagnostics.
    pub shim_log: PathBuf,
    /// The shim's socket (under the exec root: socket paths are short).
    pub socket: PathBuf,
    /// The network namespace file, when the container has one.
    pub netns: PathBuf,
}

/// A short file name for an id: socket paths must fit in 108 bytes, so sockets are
/// named by the first 16 hex digits (64 bits) rather than the whole id.
pub fn short_name(id: &str) -> &str {
    &id[..id.len().min(16)]
}

impl ContainerPaths {
    /// Paths of container `id`.
    pub fn new(config: &DaemonConfig, id: &str) -> Self {
        let dir = config.container_dir(id);
        ContainerPaths {
            diff: dir.join("diff"),
            work: dir.join("work"),
            rootfs: dir.join("rootfs"),
            bundle: dir.join("bundle"),
            hosts: dir.join("hosts"),
            hostname: dir.join("hostname"),
            resolv_conf: dir.join("resolv.conf"),
            log: dir.join(format!("{id}-json.log")),
            exit_file: dir.join("exit.json"),
            shim_config: dir.join("shim.json"),
            shim_log: dir.join("shim.log"),
            socket: config
                .exec_root
                .join("shim")
                .join(format!("{}.sock", short_name(id))),
            netns: config.exec_root.join("netns").join(id),
            dir,
        }
    }

    /// The files bind-mounted into the container.
    pub fn files(&self) -> EtcFiles {
        EtcFiles {
            hosts: self.hosts.clone(),
            hostname: self.hostname.clone(),
            resolv_conf: self.resolv_conf.clone(),
        }
    }

    /// Docker's `GraphDriver` of the container: overlay2 and its directories.
    pub fn graph_driver(&self, layers: &[PathBuf]) -> GraphDriver {
        // overlayfs lists lower dirs top-most first.
        let lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|l| l.display().to_string())
            .collect();
        let data = [
            ("LowerDir", lower.join(":")),
            ("UpperDir", self.diff.display().to_string()),
            ("WorkDir", self.work.display().to_string()),
            ("MergedDir", self.rootfs.display().to_string()),
        ];
        GraphDriver {
            name: "overlay2".into(),
            data: data.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    /// Create the directories and the per-run files; forget the last run's exit.
    pub fn prepare(&self, c: &ContainerSpec) -> Result<(), BackendError> {
        let io = |what: &Path| {
            let what = what.display().to_string();
            move |e: std::io::Error| BackendError::Failed(format!("preparing {what}: {e}"))
        };
        for d in [&self.diff, &self.work, &self.rootfs, &self.bundle] {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        if let Some(parent) = self.socket.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        match std::fs::remove_file(&self.exit_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&self.exit_file)(e))
            }
            _ => {}
        }
        let hostname = format!("{}\n", c.hostname);
        std::fs::write(&self.hostname, hostname).map_err(io(&self.hostname))?;
        std::fs::write(&self.resolv_conf, resolv_conf()).map_err(io(&self.resolv_conf))?;
        if !self.hosts.exists() {
            std::fs::write(&self.hosts, "127.0.0.1\tlocalhost\n").map_err(io(&self.hosts))?;
        }
        Ok(())
    }
}

/// The host's resolver config without loopback name servers (unreachable from a
/// container's namespace), falling back to public resolvers as docker does.
fn resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// With `--network host` the container sees the host's names.
pub fn write_host_network_files(
    paths: &ContainerPaths,
    c: &ContainerSpec,
) -> Result<(), BackendError> {
    let hosts = vmrun_network::host_network_hosts_file(&c.extra_hosts);
    std::fs::write(&paths.hosts, hosts)
        .map_err(|e| BackendError::Failed(format!("writing {}: {e}", paths.hosts.display())))?;
    if let Ok(name) = nix::unistd::gethostname() {
        std::fs::write(&paths.hostname, format!("{}\n", name.to_string_lossy())).map_err(|e| {
            BackendError::Failed(format!("writing {}: {e}", paths.hostname.display()))
        })?;
    }
    Ok(())
}

/// The container's binds and volumes, checked again: a host path removed since the
/// container was created is an error, not a silently created empty directory.
pub fn check_mounts(c: &ContainerSpec) -> Result<(), BackendError> {
    match c.mounts.iter().find(|m| !m.source.exists()) {
        Some(m) => Err(BackendError::BadRequest(format!(
            "invalid mount config: bind source path does not exist: {}",
            m.source.display()
        ))),
        None => Ok(()),
    }
}

/// Write `config.json` into the bundle.
pub fn write_bundle(paths: &ContainerPaths, spec: &Spec) -> Result<(), BackendError> {
    let path = paths.bundle.join("config.json");
    let data = serde_json::to_vec(spec)
        .map_err(|e| BackendError::Failed(format!("encoding the runtime spec: {e}")))?;
    std::fs::write(&path, data)
        .map_err(|e| BackendError::Failed(format!("writing {}: {e}", path.display())))
}

/// The OCI process of an exec: the container's process with the exec's changes.
pub fn exec_process(
    paths: &ContainerPaths,
    exec: &ExecSpec,
) -> Result<oci_spec::runtime::Process, BackendError> {
    let spec_path = paths.bundle.join("config.json");
    let spec = Spec::load(&spec_path)
        .map_err(|e| BackendError::Failed(format!("loading {}: {e}", spec_path.display())))?;
    crate::backend::exec::exec_process(spec.process().as_ref(), exec, || Ok(paths.rootfs.clone()))
}
