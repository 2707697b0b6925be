//! The sandbox's microVM and what a task is in it: the VM booted on the first task's
//! create through the daemon's VM code (`vmrun_daemon::backend::vm::machine`: monitor
//! chosen as the daemon chooses it, guest kernel and agent initramfs from
//! `VMRUN_VM_KERNEL`/`VMRUN_VM_INITRD` or the newest in `~/.cache/vmrun`), and each
//! task's container created by the agent over its root file system, which the host
//! serves into the guest as a read-only FUSE share (`vmrun_fileshare`, as the daemon
//! shares binds): the agent stacks an overlay with a writable layer on the guest's
//! tmpfs over it. The task's writes therefore stay in the VM.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use serde_json::Value;
use vmrun_agent_protocol::{CreateExec, RootfsSpec};
use vmrun_daemon::backend::vm::machine::Machine;
use vmrun_daemon::backend::vm::network::{self, ContainerNetwork};
use vmrun_daemon::backend::vm::ports;
use vmrun_daemon::backend::vm::shares::{self, ContainerShares, GuestShare};
use vmrun_daemon::backend::vm::GuestAssets;
use vmrun_daemon::vm::VmSupport;
use vmrun_vm::{BackendChoice, VmSpec};

/// Deadline of one agent call.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Guest memory (`VMRUN_SHIM_VM_MEMORY_MIB` overrides).
const DEFAULT_MEMORY_MIB: u32 = 256;
/// Where the VMs' hybrid vsock sockets live (a short path: Unix socket paths are short).
const VSOCK_DIR: &str = "/run/vmrun-shim";

/// One sandbox's VM.
pub struct Sandbox {
    machine: Arc<Machine>,
    next_share: AtomicU64,
    /// The pod's network ([`crate::netns`]), while the VM runs.
    networks: std::sync::Mutex<Vec<ContainerNetwork>>,
    /// The pod's ports forwarded from its IP ([`crate::netns`]), while the VM runs.
    forwards: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Sandbox {
    /// Boots the VM of sandbox `id`, its console log in `dir`.
    pub async fn boot(id: &str, dir: &Path) -> anyhow::Result<Sandbox> {
        let choice: BackendChoice = std::env::var("VMRUN_VM_BACKEND")
            .unwrap_or_else(|_| "auto".into())
            .parse()
            .context("VMRUN_VM_BACKEND")?;
        let support = VmSupport::detect(choice, None).context("choosing the VM monitor")?;
        let backend = support.backend().cloned().ok_or_else(|| {
            anyhow!(
                "no VM monitor on this host: {}",
                support.unavailable().unwrap_or("unknown reason")
            )
        })?;
        let env_path = |name| std::env::var_os(name).map(PathBuf::from);
        let assets = GuestAssets::locate(
            env_path("VMRUN_VM_KERNEL").as_deref(),
            env_path("VMRUN_VM_INITRD").as_deref(),
        )
        .map_err(|e| anyhow!(e))?;
        std::fs::create_dir_all(VSOCK_DIR).with_context(|| format!("creating {VSOCK_DIR}"))?;
        let mut spec = VmSpec::new(&assets.kernel, vsock_path(id));
        spec.initrd = Some(assets.initrd.clone());
        spec.memory_mib = std::env::var("VMRUN_SHIM_VM_MEMORY_MIB")
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(DEFAULT_MEMORY_MIB);
        spec.vcpus = 1;
        let serial = dir.join("vm-serial.log");
        match std::fs::remove_file(&serial) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", serial.display())),
        }
        spec.serial_log = Some(serial);
        let machine = Machine::boot(backend, spec, CALL_TIMEOUT)
            .await
            .context("booting the sandbox VM")?;
        let machine = Arc::new(machine);
        machine.keep_clock();
        log::info!(
            "sandbox {id}: VM up ({} monitor, pid {})",
            machine.backend(),
            machine.pid()
        );
        Ok(Sandbox {
            machine,
            next_share: AtomicU64::new(0),
            networks: std::sync::Mutex::new(Vec::new()),
            forwards: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The VM.
    pub fn machine(&self) -> &Arc<Machine> {
        &self.machine
    }

    /// The monitor's pid: what containerd is told as every task's pid (guest pids mean
    /// nothing on the host).
    pub fn pid(&self) -> u32 {
        self.machine.pid()
    }

    /// Creates container `id` in the guest from the bundle's `spec` over the host
    /// directory `rootfs` (`<bundle>/rootfs`); the returned shares (the root file system
    /// and the spec's bind sources, [`crate::mounts`]) serve it until dropped.
    pub async fn create_container(
        &self,
        id: &str,
        spec: Value,
        rootfs: &Path,
        tty: bool,
        open_stdin: bool,
    ) -> anyhow::Result<ContainerShares> {
        let bundle = rootfs.parent().unwrap_or(rootfs);
        let next = || self.next_share.fetch_add(1, Ordering::Relaxed);
        let share_id = format!("rootfs-{}", next());
        let pod_namespaces = self.pod_namespaces(&spec).await?;
        let pod_network = crate::netns::pod_network(&spec);
        let mut spec = guest_spec(spec, pod_namespaces.as_deref())?;
        let mut to_share = vec![GuestShare {
            id: share_id.clone(),
            host_path: rootfs.to_owned(),
            read_only: true,
        }];
        to_share.extend(crate::mounts::share_binds(&mut spec, bundle, &mut || {
            format!("bind-{}", next())
        })?);
        let running = shares::connect(&self.machine, to_share)
            .await
            .context("sharing the root file system and binds into the VM")?;
        let rootfs = RootfsSpec {
            layers: vec![vmrun_agent_protocol::share_path(&share_id)],
            writable: None,
        };
        let req = crate::runner::task_request(id, spec, rootfs, tty, open_stdin);
        self.machine
            .call("creating the container", self.machine.agent().create(req))
            .await?;
        if let Some(options) = pod_network {
            let network = network::connect_with(&self.machine, id, &options)
                .await
                .context("the pod's network")?;
            self.networks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(network);
            // Every port the pod serves on is reached at its IP, as on any node.
            let (task, _ports) = ports::forward_listeners(
                self.machine.clone(),
                id.to_string(),
                crate::netns::pod_ports(&options),
            );
            self.forwards
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(task);
        }
        Ok(running)
    }

    /// The guest directory of the namespaces a container of a pod joins: those of its
    /// sandbox (pause) container when the CRI made it (`io.kubernetes.cri.*`
    /// annotations) and it runs in this VM, as `/proc/<its guest pid>/ns`; `None` for a
    /// sandbox container or any other task.
    async fn pod_namespaces(&self, spec: &Value) -> anyhow::Result<Option<PathBuf>> {
        let annotation = |key: &str| {
            spec.get("annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
        };
        if annotation(CONTAINER_TYPE) != Some("container") {
            return Ok(None);
        }
        let Some(sandbox) = annotation(SANDBOX_ID) else {
            return Ok(None);
        };
        let agent = self.machine.agent();
        let processes = match self
            .machine
            .call("listing the sandbox", agent.top(sandbox))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                log::info!("sandbox container {sandbox} not in this VM ({e}): own namespaces");
                return Ok(None);
            }
        };
        let init = processes
            .iter()
            .map(|p| p.pid)
            .min()
            .ok_or_else(|| anyhow!("the pod's sandbox container {sandbox} runs no process"))?;
        Ok(Some(PathBuf::from(format!("/proc/{init}/ns"))))
    }

    /// Creates exec `exec_id` of container `container` running OCI `process`.
    pub async fn create_exec(
        &self,
        container: &str,
        exec_id: &str,
        process: Value,
        open_stdin: bool,
    ) -> anyhow::Result<()> {
        let req = CreateExec {
            container_id: container.to_string(),
            exec_id: exec_id.to_string(),
            process,
            open_stdin,
            console_size: None,
        };
        self.machine
            .call("creating the exec", self.machine.agent().exec(req))
            .await?;
        Ok(())
    }

    /// Ends the VM. No clean guest shutdown: the guest has no disk (its writable layers
    /// are on its tmpfs, the root file systems are the host's), so there is nothing to
    /// sync, and a TCG guest's shutdown takes seconds.
    pub async fn shutdown(&self) {
        for task in self
            .forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
        self.networks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.machine.kill().await;
    }
}

/// The longest exec id given to the agent: its sockets live at
/// `/run/vmrun/agent/execs/<id>/shim.sock`, within a Unix socket path's 108 bytes.
const MAX_EXEC_ID: usize = 64;

/// The agent's id of exec `exec_id` of `container` (one id space per VM):
/// `<container>.<exec_id>`, or where that is too long for the agent (the CRI's exec ids
/// are 64 hex digits, as are its container ids) the container's first 12 characters
/// and a hash of both.
pub fn exec_agent_id(container: &str, exec_id: &str) -> String {
    use std::hash::{Hash, Hasher};
    let id = format!("{container}.{exec_id}");
    if id.len() <= MAX_EXEC_ID && vmrun_agent_protocol::valid_id(&id) {
        return id;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (container, exec_id).hash(&mut h);
    let head: String = container
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!("{head}.x{:016x}", h.finish())
}

/// The hybrid vsock socket of sandbox `id`: short, unique per shim (the same task id may
/// be in use in another containerd namespace or by another containerd).
fn vsock_path(id: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (std::process::id(), id).hash(&mut h);
    Path::new(VSOCK_DIR).join(format!("{:016x}.vsock", h.finish()))
}

/// The annotation of the CRI saying what a task is: `sandbox` or `container`.
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// The annotation containerd's CRI plugin puts on every container of a pod: its sandbox.
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// The namespaces a pod's containers share with its sandbox container (their
/// `linux.namespaces` paths name the host's: the CNI network namespace, the sandbox
/// task's "pid", which here is the VM monitor's) and their names under `/proc/<pid>/ns`.
const POD_NAMESPACES: [(&str, &str); 3] = [("network", "net"), ("ipc", "ipc"), ("uts", "uts")];

/// containerd's spec as the guest runs it: hooks (host programs) are dropped, and so
/// are the paths of namespaces the host made, except that a pod's container joins its
/// sandbox container's network, IPC and UTS namespaces in the guest (`pod`: their
/// directory there, [`Sandbox::pod_namespaces`]).
fn guest_spec(mut spec: Value, pod: Option<&Path>) -> anyhow::Result<Value> {
    let obj = spec
        .as_object_mut()
        .ok_or_else(|| anyhow!("config.json is not a JSON object"))?;
    obj.remove("hooks");
    if let Some(namespaces) = obj
        .get_mut("linux")
        .and_then(|l| l.get_mut("namespaces"))
        .and_then(Value::as_array_mut)
    {
        for ns in namespaces {
            let Some(ns) = ns.as_object_mut() else {
                continue;
            };
            let had_path = ns.remove("path").is_some();
            let kind = ns.get("type").and_then(Value::as_str).unwrap_or_default();
            let shared = POD_NAMESPACES.iter().find(|(t, _)| *t == kind);
            if let (true, Some(dir), Some((_, name))) = (had_path, pod, shared) {
                ns.insert(
                    "path".into(),
                    Value::String(dir.join(name).display().to_string()),
                );
            }
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_namespace_paths_and_hooks_are_dropped() {
        let spec = serde_json::json!({
            "hooks": {"prestart": [{"path": "/bin/true"}]},
            "linux": {"namespaces": [
                {"type": "network", "path": "/var/run/netns/cni-1"},
                {"type": "pid"}
            ]}
        });
        let got = guest_spec(spec, None).unwrap();
        assert!(got.get("hooks").is_none());
        assert_eq!(
            got["linux"]["namespaces"],
            serde_json::json!([{"type": "network"}, {"type": "pid"}])
        );
        assert!(guest_spec(serde_json::json!([]), None).is_err());
    }

    #[test]
    fn a_pods_container_joins_its_sandbox_in_the_guest() {
        let spec = serde_json::json!({
            "linux": {"namespaces": [
                {"type": "pid"},
                {"type": "ipc", "path": "/proc/4242/ns/ipc"},
                {"type": "uts", "path": "/proc/4242/ns/uts"},
                {"type": "mount"},
                {"type": "network", "path": "/run/netns/cni-1"}
            ]}
        });
        let got = guest_spec(spec, Some(Path::new("/proc/7/ns"))).unwrap();
        assert_eq!(
            got["linux"]["namespaces"],
            serde_json::json!([
                {"type": "pid"},
                {"type": "ipc", "path": "/proc/7/ns/ipc"},
                {"type": "uts", "path": "/proc/7/ns/uts"},
                {"type": "mount"},
                {"type": "network", "path": "/proc/7/ns/net"}
            ])
        );
    }

    #[test]
    fn exec_ids_fit_the_agent() {
        assert_eq!(exec_agent_id("c1", "e1"), "c1.e1");
        let (c, e) = ("a".repeat(64), "b".repeat(64));
        let long = exec_agent_id(&c, &e);
        assert!(vmrun_agent_protocol::valid_id(&long), "{long}");
        assert!(long.len() <= MAX_EXEC_ID, "{long}");
        assert!(long.starts_with("aaaaaaaaaaaa."));
        assert_ne!(long, exec_agent_id(&c, &"c".repeat(64)));
        assert_ne!(long, exec_agent_id(&"d".repeat(64), &e));
    }

    #[test]
    fn vsock_paths_are_short_and_distinct() {
        let a = vsock_path(&"a".repeat(64));
        let b = vsock_path(&"b".repeat(64));
        assert_ne!(a, b);
        // `_<port>` is appended by guest-initiated connections; 108 bytes at most.
        assert!(a.as_os_str().len() + 6 < 108);
    }
}
