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
use vmrun_agent_protocol::{CreateContainer, CreateExec, RootfsSpec};
use vmrun_daemon::backend::vm::machine::Machine;
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
    /// directory `rootfs`; the returned shares serve it until dropped.
    pub async fn create_container(
        &self,
        id: &str,
        spec: Value,
        rootfs: &Path,
        tty: bool,
        open_stdin: bool,
    ) -> anyhow::Result<ContainerShares> {
        let share_id = format!("rootfs-{}", self.next_share.fetch_add(1, Ordering::Relaxed));
        let running = shares::connect(
            &self.machine,
            vec![GuestShare {
                id: share_id.clone(),
                host_path: rootfs.to_owned(),
                read_only: true,
            }],
        )
        .await
        .context("sharing the root file system into the VM")?;
        let req = CreateContainer {
            id: id.to_string(),
            spec: guest_spec(spec)?,
            rootfs: RootfsSpec {
                layers: vec![vmrun_agent_protocol::share_path(&share_id)],
                writable: None,
            },
            user: None,
            tty,
            open_stdin,
            stdin_once: true,
            console_size: None,
            log_path: None,
            etc_files: None,
        };
        self.machine
            .call("creating the container", self.machine.agent().create(req))
            .await?;
        Ok(running)
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
        self.machine.kill().await;
    }
}

/// The hybrid vsock socket of sandbox `id`: short, unique per shim (the same task id may
/// be in use in another containerd namespace or by another containerd).
fn vsock_path(id: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (std::process::id(), id).hash(&mut h);
    Path::new(VSOCK_DIR).join(format!("{:016x}.vsock", h.finish()))
}

/// containerd's spec as the guest runs it: namespaces the host made (a path: CRI's
/// network namespace) become the guest's own, and hooks (host programs) are dropped.
fn guest_spec(mut spec: Value) -> anyhow::Result<Value> {
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
            if let Some(ns) = ns.as_object_mut() {
                ns.remove("path");
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
        let got = guest_spec(spec).unwrap();
        assert!(got.get("hooks").is_none());
        assert_eq!(
            got["linux"]["namespaces"],
            serde_json::json!([{"type": "network"}, {"type": "pid"}])
        );
        assert!(guest_spec(serde_json::json!([])).is_err());
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
