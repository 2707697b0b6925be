//! [`VmmBackend`]: one `vmrun-vmm` process per VM (our own KVM monitor).

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::VmError;
use crate::exit::VmExit;
use crate::instance::{wait_for_socket, ExitFacts, ProcessVm, StartGuard, VmInstance};
use crate::process::{spawn_tied, Monitor};
use crate::spec::{free_socket_path, VmSpec};
use crate::VmBackend;

/// How long `vmrun-vmm` gets to build the VM and bind its vsock socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Launches VMs with the `vmrun-vmm` binary (needs hardware KVM to boot Linux).
#[derive(Debug, Clone)]
pub struct VmmBackend {
    binary: PathBuf,
}

impl VmmBackend {
    /// `binary`: the `vmrun-vmm` executable.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        VmmBackend {
            binary: binary.into(),
        }
    }

    /// The `vmrun-vmm` command line for `spec` (flags from `host/vmm/src/main.rs`).
    pub fn command(&self, spec: &VmSpec) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--vcpus")
            .arg(spec.vcpus.to_string())
            .arg("--memory-mib")
            .arg(spec.memory_mib.to_string())
            .arg("--kernel")
            .arg(&spec.kernel)
            .arg("--cmdline")
            .arg(&spec.cmdline)
            .arg("--vsock-cid")
            .arg(spec.guest_cid.to_string())
            .arg("--vsock-uds")
            .arg(&spec.vsock_path);
        if let Some(initrd) = &spec.initrd {
            cmd.arg("--initrd").arg(initrd);
        }
        for disk in &spec.disks {
            let mut arg = disk.path.clone().into_os_string();
            arg.push(if disk.read_only { ",ro" } else { ",rw" });
            cmd.arg("--disk").arg(arg);
        }
        match &spec.serial_log {
            Some(log) => {
                let mut arg = std::ffi::OsString::from("file:");
                arg.push(log);
                cmd.arg("--serial").arg(arg)
            }
            None => cmd.arg("--serial").arg("none"),
        };
        cmd
    }
}

impl VmBackend for VmmBackend {
    fn name(&self) -> &'static str {
        "vmm"
    }

    fn launch(&self, spec: &VmSpec) -> Result<Box<dyn VmInstance>, VmError> {
        spec.validate()?;
        free_socket_path("vsock_path", &spec.vsock_path)?;
        let run_dir = tempfile::Builder::new()
            .prefix("vmrun-vm-")
            .tempdir()
            .map_err(|e| VmError::io("creating the VM's private directory", e))?;
        let log = run_dir.path().join("vmrun-vmm.stderr");
        let stderr = std::fs::File::create(&log)
            .map_err(|e| VmError::io(format!("creating {}", log.display()), e))?;
        let mut cmd = self.command(spec);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut guard = StartGuard::new(&spec.vsock_path);
        // vmrun-vmm handles SIGTERM (stops the VM, removes its socket) and sets its own
        // PR_SET_PDEATHSIG too; ours covers the time before its main runs.
        let child = spawn_tied(cmd, libc::SIGTERM).map_err(|source| VmError::Spawn {
            program: self.binary.clone(),
            source,
        })?;
        guard.monitors.push(Monitor::new(child));
        wait_for_socket(
            &spec.vsock_path,
            &[("vmrun-vmm", &guard.monitors[0], &log)],
            START_TIMEOUT,
        )?;
        let main = guard.disarm().remove(0);
        tracing::info!(pid = main.pid(), vsock = %spec.vsock_path.display(), "vmrun-vmm VM started");
        Ok(Box::new(ProcessVm {
            backend: "vmm",
            main,
            main_log: log,
            helpers: Vec::new(),
            vsock_path: spec.vsock_path.clone(),
            run_dir,
            classify: classify_vmm_exit,
            qmp: Mutex::new(None),
            stop_requested: AtomicBool::new(false),
            exit: Mutex::new(None),
        }))
    }
}

/// `vmrun-vmm` exit statuses: 0 halt/poweroff, 2 reset, 3 VM error, 143 SIGTERM/parent death,
/// 1 never started.
fn classify_vmm_exit(facts: ExitFacts) -> VmExit {
    let stopped_by_us = facts.stop_requested;
    match (facts.status.code(), facts.status.signal()) {
        (Some(0), _) => VmExit::Poweroff,
        (Some(2), _) => VmExit::Reset,
        (Some(143), _) if stopped_by_us => VmExit::Stopped,
        (Some(143), _) => VmExit::Terminated {
            signal: libc::SIGTERM,
        },
        (None, Some(_)) if stopped_by_us => VmExit::Stopped,
        (None, Some(signal)) => VmExit::Terminated { signal },
        (code, _) => VmExit::Failed {
            message: format!(
                "vmrun-vmm exited with {}: {}",
                code.map_or_else(|| "no status".to_string(), |c| format!("status {c}")),
                facts.stderr_text()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::ExitStatus;

    fn facts(raw_wait_status: i32, stop_requested: bool) -> ExitFacts {
        ExitFacts {
            status: ExitStatus::from_raw(raw_wait_status),
            stop_requested,
            stderr: "vmrun-vmm: VM error: boom".into(),
            qmp_reason: None,
        }
    }

    #[test]
    fn maps_vmrun_vmm_exit_statuses() {
        assert_eq!(classify_vmm_exit(facts(0, false)), VmExit::Poweroff);
        assert_eq!(classify_vmm_exit(facts(2 << 8, false)), VmExit::Reset);
        assert_eq!(classify_vmm_exit(facts(143 << 8, true)), VmExit::Stopped);
        assert_eq!(
            classify_vmm_exit(facts(143 << 8, false)),
            VmExit::Terminated { signal: 15 }
        );
        assert_eq!(classify_vmm_exit(facts(9, true)), VmExit::Stopped);
        assert_eq!(
            classify_vmm_exit(facts(9, false)),
            VmExit::Terminated { signal: 9 }
        );
        match classify_vmm_exit(facts(3 << 8, false)) {
            VmExit::Failed { message } => {
                assert!(
                    message.contains("status 3") && message.contains("boom"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_carries_every_spec_field() {
        let mut spec = VmSpec::new("/k/vmlinux", "/run/v.sock");
        spec.vcpus = 2;
        spec.memory_mib = 512;
        spec.initrd = Some("/k/initrd".into());
        spec.disks = vec![crate::DiskSpec {
            path: "/d/a.img".into(),
            read_only: true,
        }];
        spec.serial_log = Some("/l/serial.log".into());
        let cmd = VmmBackend::new("/bin/vmrun-vmm").command(&spec);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        for want in [
            "--vcpus 2",
            "--memory-mib 512",
            "--kernel /k/vmlinux",
            "--initrd /k/initrd",
            "--vsock-cid 3",
            "--vsock-uds /run/v.sock",
            "--disk /d/a.img,ro",
            "--serial file:/l/serial.log",
        ] {
            assert!(joined.contains(want), "{want:?} missing from {joined}");
        }
        assert!(args.contains(&VmSpec::DEFAULT_CMDLINE.to_string()));
    }
}
