//! [`QemuBackend`]: `vhost-device-vsock` + `qemu-system-x86_64 -M microvm,acpi=off` per VM.
//!
//! The vsock device is vhost-user: `vhost-device-vsock` owns the hybrid socket (same
//! `CONNECT <port>` handshake as our VMM), QEMU connects to its vhost-user socket. QEMU's
//! monitor (QMP) is a socket pair; its `SHUTDOWN` event says why the VM ended.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::VmError;
use crate::exit::VmExit;
use crate::instance::{wait_for_socket, ExitFacts, ProcessVm, StartGuard, VmInstance};
use crate::process::{describe_status, log_tail, spawn_tied, Monitor};
use crate::spec::{free_socket_path, VmSpec};
use crate::VmBackend;

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// QEMU's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware KVM (`-accel kvm -cpu host`).
    Kvm,
    /// Emulation (`-accel tcg`): slow (about 1 s to boot the vmrun kernel) but runs anywhere.
    Tcg,
}

/// Launches VMs with QEMU's `microvm` machine.
#[derive(Debug, Clone)]
pub struct QemuBackend {
    qemu: PathBuf,
    vhost_device_vsock: PathBuf,
    accel: Accel,
}

impl QemuBackend {
    pub fn new(
        qemu: impl Into<PathBuf>,
        vhost_device_vsock: impl Into<PathBuf>,
        accel: Accel,
    ) -> Self {
        QemuBackend {
            qemu: qemu.into(),
            vhost_device_vsock: vhost_device_vsock.into(),
            accel,
        }
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The `vhost-device-vsock` command line.
    fn vhost_command(&self, spec: &VmSpec, vhost_socket: &Path) -> Command {
        let mut cmd = Command::new(&self.vhost_device_vsock);
        cmd.arg("--guest-cid")
            .arg(spec.guest_cid.to_string())
            .arg("--socket")
            .arg(vhost_socket)
            .arg("--uds-path")
            .arg(&spec.vsock_path);
        cmd
    }

    /// The QEMU command line (QMP on fd `qmp_fd`).
    pub fn qemu_command(&self, spec: &VmSpec, vhost_socket: &Path, qmp_fd: i32) -> Command {
        let mut cmd = Command::new(&self.qemu);
        let mem = spec.memory_mib;
        cmd.args(["-M", "microvm,acpi=off,memory-backend=mem"]);
        match self.accel {
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
            Accel::Tcg => cmd.args(["-accel", "tcg"]),
        };
        cmd.args(["-smp", &spec.vcpus.to_string(), "-m", &format!("{mem}M")])
            .args([
                "-object",
                &format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
            ])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ])
            .arg("-chardev")
            .arg(opt("socket,id=vsock0,path=", vhost_socket))
            .args(["-device", "vhost-user-vsock-device,chardev=vsock0"])
            .args(["-chardev", &format!("socket,id=qmp,fd={qmp_fd}")])
            .args(["-mon", "chardev=qmp,mode=control"])
            .arg("-serial")
            .arg(match &spec.serial_log {
                Some(log) => opt("file:", log),
                None => "null".into(),
            })
            .arg("-kernel")
            .arg(opt("", &spec.kernel))
            .arg("-append")
            .arg(&spec.cmdline);
        if let Some(initrd) = &spec.initrd {
            cmd.arg("-initrd").arg(opt("", initrd));
        }
        for (i, disk) in spec.disks.iter().enumerate() {
            let ro = if disk.read_only { ",readonly=on" } else { "" };
            cmd.arg("-drive")
                .arg(format!(
                    "{}{ro}",
                    opt(&format!("id=disk{i},if=none,format=raw,file="), &disk.path)
                ))
                .args(["-device", &format!("virtio-blk-device,drive=disk{i}")]);
        }
        cmd
    }
}

/// `prefix` + `path` with QEMU's option escaping (a comma is written twice).
fn opt(prefix: &str, path: &Path) -> String {
    format!("{prefix}{}", path.to_string_lossy().replace(',', ",,"))
}

impl VmBackend for QemuBackend {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn launch(&self, spec: &VmSpec) -> Result<Box<dyn VmInstance>, VmError> {
        spec.validate()?;
        for (field, path) in [
            ("kernel", Some(&spec.kernel)),
            ("initrd", spec.initrd.as_ref()),
        ] {
            if path.is_some_and(|p| p.to_str().is_none()) {
                return Err(VmError::InvalidSpec {
                    field,
                    reason: "QEMU needs a UTF-8 path".into(),
                });
            }
        }
        free_socket_path("vsock_path", &spec.vsock_path)?;
        let run_dir = tempfile::Builder::new()
            .prefix("vmrun-vm-")
            .tempdir()
            .map_err(|e| VmError::io("creating the VM's private directory", e))?;
        let vhost_socket = run_dir.path().join("vhost-user.sock");
        let vhost_log = run_dir.path().join("vhost-device-vsock.stderr");
        let qemu_log = run_dir.path().join("qemu.stderr");
        let log_file = |path: &Path| {
            std::fs::File::create(path)
                .map_err(|e| VmError::io(format!("creating {}", path.display()), e))
        };
        let mut guard = StartGuard::new(&spec.vsock_path);

        let mut vhost = self.vhost_command(spec, &vhost_socket);
        vhost
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&vhost_log)?);
        let child = spawn_tied(vhost, libc::SIGKILL).map_err(|source| VmError::Spawn {
            program: self.vhost_device_vsock.clone(),
            source,
        })?;
        guard.monitors.push(Monitor::new(child));
        wait_for_socket(
            &vhost_socket,
            &[("vhost-device-vsock", &guard.monitors[0], &vhost_log)],
            START_TIMEOUT,
        )?;

        let (qmp_ours, qmp_theirs) =
            UnixStream::pair().map_err(|e| VmError::io("creating the QMP socket pair", e))?;
        let qmp_fd = qmp_theirs.as_raw_fd();
        let mut qemu = self.qemu_command(spec, &vhost_socket, qmp_fd);
        qemu.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&qemu_log)?);
        // SAFETY: runs in the forked child before exec; fcntl on an fd number is
        // async-signal-safe. Clearing FD_CLOEXEC there hands QEMU its end of the pair.
        unsafe {
            qemu.pre_exec(move || {
                if libc::fcntl(qmp_fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = spawn_tied(qemu, libc::SIGKILL).map_err(|source| VmError::Spawn {
            program: self.qemu.clone(),
            source,
        })?;
        drop(qmp_theirs);
        guard.monitors.push(Monitor::new(child));
        let (ready_tx, ready_rx) = mpsc::channel();
        let qmp = watch_qmp(qmp_ours, ready_tx)?;
        let monitors = [
            ("qemu-system-x86_64", &guard.monitors[1], qemu_log.as_path()),
            (
                "vhost-device-vsock",
                &guard.monitors[0],
                vhost_log.as_path(),
            ),
        ];
        wait_for_socket(&spec.vsock_path, &monitors, START_TIMEOUT)?;
        wait_for_qmp_ready(&ready_rx, &monitors)?;
        let mut monitors = guard.disarm();
        let main = monitors.remove(1);
        tracing::info!(pid = main.pid(), accel = ?self.accel, vsock = %spec.vsock_path.display(), "QEMU VM started");
        Ok(Box::new(ProcessVm {
            backend: "qemu",
            main,
            main_log: qemu_log,
            helpers: monitors,
            vsock_path: spec.vsock_path.clone(),
            run_dir,
            classify: classify_qemu_exit,
            qmp: Mutex::new(Some(qmp)),
            stop_requested: AtomicBool::new(false),
            exit: Mutex::new(None),
        }))
    }
}

/// Waits for QEMU's answer to `query-status`: QEMU serves QMP only once the machine is built
/// and the kernel loaded, so a bad kernel fails the launch rather than a later `wait`.
fn wait_for_qmp_ready(
    ready: &mpsc::Receiver<()>,
    monitors: &[(&'static str, &Monitor, &Path)],
) -> Result<(), VmError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let closed = match ready.recv_timeout(Duration::from_millis(5)) {
            Ok(()) => return Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => true,
        };
        for (program, monitor, log) in monitors {
            let status = if closed && *program == "qemu-system-x86_64" {
                // QMP closed: QEMU is exiting; collect its status.
                monitor.wait_timeout(Duration::from_secs(5))
            } else {
                monitor.try_status()
            };
            let status = status.map_err(|e| VmError::io(format!("waiting for {program}"), e))?;
            if let Some(status) = status {
                return Err(VmError::StartFailed {
                    program,
                    status: describe_status(status),
                    stderr: log_tail(log, 2000),
                });
            }
        }
        if closed || Instant::now() >= deadline {
            return Err(VmError::StartTimeout {
                seconds: START_TIMEOUT.as_secs(),
                what: "QEMU did not answer on its monitor".into(),
            });
        }
    }
}

/// Negotiates QMP, asks `query-status` (its answer is sent on `ready`), and returns the
/// reason of the last `SHUTDOWN` event once QEMU closes the monitor.
fn watch_qmp(
    stream: UnixStream,
    ready: mpsc::Sender<()>,
) -> Result<JoinHandle<Option<String>>, VmError> {
    let mut writer = stream
        .try_clone()
        .map_err(|e| VmError::io("cloning the QMP socket", e))?;
    std::thread::Builder::new()
        .name("vmrun-vm-qmp".into())
        .spawn(move || {
            let mut reason = None;
            let mut greeted = false;
            let mut returns = 0;
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if !greeted {
                    // The greeting: events flow only after qmp_capabilities.
                    greeted = true;
                    let hello =
                        b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-status\"}\n";
                    if writer.write_all(hello).is_err() {
                        break;
                    }
                    continue;
                }
                if line.starts_with("{\"return\"") {
                    returns += 1;
                    if returns == 2 {
                        let _ = ready.send(());
                    }
                }
                if let Some(why) = shutdown_reason(&line) {
                    reason = Some(why);
                }
            }
            reason
        })
        .map_err(|e| VmError::io("starting the QMP reader thread", e))
}

/// `{"event": "SHUTDOWN", "data": {"reason": "guest-reset", ...}}` → `guest-reset`.
fn shutdown_reason(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("event")?.as_str()? != "SHUTDOWN" {
        return None;
    }
    Some(value.get("data")?.get("reason")?.as_str()?.to_string())
}

/// QEMU exits 0 for every orderly shutdown; the QMP reason tells them apart.
fn classify_qemu_exit(facts: ExitFacts) -> VmExit {
    if facts.stop_requested && (facts.status.signal().is_some() || facts.status.code() == Some(0)) {
        return VmExit::Stopped;
    }
    if let Some(signal) = facts.status.signal() {
        return VmExit::Terminated { signal };
    }
    match (facts.status.code(), facts.qmp_reason.as_deref()) {
        (Some(0), Some("guest-reset")) => VmExit::Reset,
        (Some(0), Some("guest-shutdown")) => VmExit::Poweroff,
        (Some(0), Some("host-signal")) => VmExit::Terminated {
            signal: libc::SIGTERM,
        },
        (Some(0), Some("guest-panic")) => VmExit::Failed {
            message: "the guest kernel panicked".into(),
        },
        (code, reason) => VmExit::Failed {
            message: format!(
                "qemu exited with status {} (shutdown reason {}): {}",
                code.map_or_else(|| "?".to_string(), |c| c.to_string()),
                reason.unwrap_or("none"),
                facts.stderr_text()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::ExitStatus;

    fn facts(raw: i32, stop: bool, reason: Option<&str>) -> ExitFacts {
        ExitFacts {
            status: ExitStatus::from_raw(raw),
            stop_requested: stop,
            stderr: "qemu-system-x86_64: broken".into(),
            qmp_reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn reads_shutdown_reasons_from_qmp_events() {
        let event = r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-reset"}}"#;
        assert_eq!(shutdown_reason(event).as_deref(), Some("guest-reset"));
        assert_eq!(
            shutdown_reason(r#"{"event": "RESET", "data": {"reason": "x"}}"#),
            None
        );
        assert_eq!(shutdown_reason(r#"{"return": {}}"#), None);
        assert_eq!(shutdown_reason("not json"), None);
    }

    #[test]
    fn maps_qemu_exits() {
        assert_eq!(
            classify_qemu_exit(facts(0, false, Some("guest-reset"))),
            VmExit::Reset
        );
        assert_eq!(
            classify_qemu_exit(facts(0, false, Some("guest-shutdown"))),
            VmExit::Poweroff
        );
        assert_eq!(
            classify_qemu_exit(facts(0, true, Some("host-signal"))),
            VmExit::Stopped
        );
        assert_eq!(classify_qemu_exit(facts(9, true, None)), VmExit::Stopped);
        assert_eq!(
            classify_qemu_exit(facts(9, false, None)),
            VmExit::Terminated { signal: 9 }
        );
        assert_eq!(
            classify_qemu_exit(facts(0, false, Some("host-signal"))),
            VmExit::Terminated { signal: 15 }
        );
        match classify_qemu_exit(facts(1 << 8, false, None)) {
            VmExit::Failed { message } => assert!(message.contains("broken"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn escapes_commas_in_paths() {
        assert_eq!(opt("file:", Path::new("/a,b/c")), "file:/a,,b/c");
    }
}
