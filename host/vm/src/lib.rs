//! The daemon's `VmBackend` seam: microVMs launched through our own monitor (`vmrun-vmm`,
//! hardware KVM) or QEMU (`-M microvm,acpi=off`, KVM or TCG), reached over hybrid vsock.
//!
//! ```no_run
//! use std::time::Duration;
//! use vmrun_vm::{select_backend, BackendChoice, HostCaps, VmSpec};
//! let backend = select_backend(BackendChoice::Auto, &HostCaps::detect(None))?;
//! let mut spec = VmSpec::new("/root/.cache/vmrun/kernel/HASH/vmlinux", "/run/vmrun/vm1.vsock");
//! spec.initrd = Some("/var/lib/vmrun/agent-initrd.cpio.gz".into());
//! let vm = backend.launch(&spec)?;                  // returns once the vsock socket exists
//! let stream = vm.connect(1024, Duration::from_secs(10))?; // CONNECT 1024 / OK n, retried
//! # drop(stream);
//! let why = vm.stop(Duration::from_secs(5))?;      // SIGTERM, SIGKILL after 5 s
//! println!("{why}");
//! # Ok::<(), vmrun_vm::VmError>(())
//! ```
//!
//! Everything is blocking (std); from tokio call it in `spawn_blocking` and turn the stream
//! into a `tokio::net::UnixStream` with `set_nonblocking(true)` + `from_std`. Monitors are
//! forked from one long-lived internal thread with `PR_SET_PDEATHSIG`, so they die with the
//! daemon whichever thread launched them.
//!
//! A guest ends its VM by rebooting: under QEMU `microvm,acpi=off` a poweroff only halts the
//! CPUs and QEMU keeps running.

mod error;
mod exit;
pub mod host;
pub mod hybrid_vsock;
mod instance;
mod process;
pub mod qemu_backend;
mod spec;
pub mod vmm_backend;

pub use error::VmError;
pub use exit::VmExit;
pub use host::{select_backend, BackendChoice, HostCaps, KvmStatus};
pub use hybrid_vsock::HybridVsockError;
pub use instance::VmInstance;
pub use qemu_backend::{Accel, QemuBackend};
pub use spec::{DiskSpec, VmSpec};
pub use vmm_backend::VmmBackend;

/// Launches VMs. Implementations: [`VmmBackend`], [`QemuBackend`].
pub trait VmBackend: Send + Sync + std::fmt::Debug {
    /// `"vmm"` or `"qemu"`.
    fn name(&self) -> &'static str;
    /// Validates `spec`, starts the monitor(s) and returns once the vsock socket exists. On
    /// error nothing is left running and no socket is left behind.
    fn launch(&self, spec: &VmSpec) -> Result<Box<dyn VmInstance>, VmError>;
}
