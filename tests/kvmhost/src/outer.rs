//! The outer host: Debian's kernel with kvm-amd, under QEMU TCG with an SVM CPU model.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use vmrun_initramfs::CpioError;
use vmrun_test_skip::Skip;

use crate::job::{write_initramfs, Job, Outcome, BUSYBOX};

/// The outer kernel and its KVM modules, as `outer-kernel.sh` left them.
#[derive(Debug, Clone)]
pub(crate) struct OuterKernel {
    /// The cache directory.
    pub dir: PathBuf,
    /// Module file names in load order (KVM: irqbypass, ccp, kvm, kvm-amd; then llc, stp,
    /// bridge for a vmrund run inside).
    pub module_order: Vec<String>,
}

/// Why a run failed (as opposed to the command failing, which is an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Preparing the run (files, ldd, temp dirs).
    #[error("preparing the nested KVM host: {0}")]
    Setup(String),
    /// Writing the outer initramfs.
    #[error("writing the outer initramfs: {0}")]
    Cpio(#[from] CpioError),
    /// QEMU could not be started or died before the outer host finished.
    #[error("QEMU failed ({status}); serial log:\n{serial}")]
    Qemu {
        /// QEMU's exit status.
        status: String,
        /// The serial log so far.
        serial: String,
    },
    /// The outer kernel did not offer `/dev/kvm` after loading kvm-amd.
    #[error("the outer host has no /dev/kvm after loading kvm-amd; serial log:\n{serial}")]
    NoKvm {
        /// The serial log.
        serial: String,
    },
    /// The run took longer than the job's timeout; QEMU was killed.
    #[error("the nested KVM host did not finish within {after:?} (killed); serial log:\n{serial}")]
    Timeout {
        /// The job's timeout.
        after: Duration,
        /// The serial log so far.
        serial: String,
    },
}

/// A QEMU that can run the outer host, and the outer kernel.
#[derive(Debug, Clone)]
pub struct KvmHost {
    pub(crate) qemu: PathBuf,
    pub(crate) kernel: OuterKernel,
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether this QEMU's TCG knows the `svm` and `npt` CPU flags.
fn tcg_has_svm(qemu: &Path) -> Result<(), Skip> {
    let out = Command::new(qemu)
        .args(["-accel", "tcg", "-cpu", "help"])
        .output()
        .map_err(|e| Skip::new(format!("cannot run {}: {e}", qemu.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let flags: Vec<&str> = text
        .split("Recognized CPUID flags:")
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if flags.contains(&"svm") && flags.contains(&"npt") {
        Ok(())
    } else {
        Err(Skip::new(format!(
            "{} does not list the svm and npt CPU flags: its TCG cannot emulate AMD SVM",
            qemu.display()
        )))
    }
}

fn outer_kernel() -> Result<OuterKernel, Skip> {
    let script = repo_root().join("tests/kvmhost/outer-kernel.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| Skip::new(format!("cannot run {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(Skip::new(format!(
            "no outer kernel for the nested KVM host: {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let order = std::fs::read_to_string(dir.join("modules.order"))
        .map_err(|e| Skip::new(format!("{}/modules.order: {e}", dir.display())))?;
    let module_order: Vec<String> = order.lines().map(str::to_string).collect();
    for f in module_order.iter().map(String::as_str).chain(["vmlinuz"]) {
        if !dir.join(f).is_file() {
            return Err(Skip::new(format!("{} lacks {f}", dir.display())));
        }
    }
    Ok(OuterKernel { dir, module_order })
}

/// Debian's `linux-image-amd64` kernel (a bzImage), fetched and cached as the outer host's
/// kernel: tests that need a stock distro kernel image use it too.
pub fn debian_kernel() -> Result<PathBuf, Skip> {
    Ok(outer_kernel()?.dir.join("vmlinuz"))
}

impl KvmHost {
    /// The host, or why it cannot run here (no QEMU, no SVM in TCG, no busybox-static, no
    /// Debian kernel). Fetches the outer kernel on first use (cached).
    pub fn get() -> Result<KvmHost, Skip> {
        static HOST: OnceLock<Result<KvmHost, Skip>> = OnceLock::new();
        HOST.get_or_init(|| {
            let qemu = find_on_path("qemu-system-x86_64").ok_or_else(|| {
                Skip::new("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
            })?;
            tcg_has_svm(&qemu)?;
            if !Path::new(BUSYBOX).is_file() {
                return Err(Skip::new(format!(
                    "{BUSYBOX} is missing (Debian package busybox-static)"
                )));
            }
            Ok(KvmHost {
                qemu,
                kernel: outer_kernel()?,
            })
        })
        .clone()
    }

    /// Boots the outer host, runs `job` in it, and powers it off. One outer host runs at a
    /// time on this machine (a lock file): each keeps two emulated CPUs busy, and two at
    /// once on a 2-core machine slowed guests past their timeouts.
    pub fn run(&self, job: &Job) -> Result<Outcome, RunError> {
        let _one_at_a_time = host_lock()?;
        let scratch = tempfile::tempdir().map_err(|e| RunError::Setup(e.to_string()))?;
        let initrd = scratch.path().join("outer.cpio");
        write_initramfs(job, &self.kernel, scratch.path(), &initrd)?;
        crate::qemu::run_outer(self, job, &initrd)
    }
}

/// An exclusive `flock` on `/tmp/vmrun-kvmhost.lock`, held until dropped.
fn host_lock() -> Result<std::fs::File, RunError> {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join("vmrun-kvmhost.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| RunError::Setup(format!("{}: {e}", path.display())))?;
    // SAFETY: flock on a descriptor we own; it touches no memory of ours.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(RunError::Setup(format!(
            "locking {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(file)
}
