//! Test support: a real KVM host for tests on machines whose own `/dev/kvm` cannot boot Linux
//! (PVM here). QEMU's TCG emulates AMD SVM with nested paging, so a Debian kernel booted
//! under TCG with `-cpu EPYC,+svm,+npt` loads `kvm_amd` and offers an ordinary `/dev/kvm`;
//! inside it our `vmrun-vmm` boots guests as it would on hardware.
//!
//! Two ways in:
//! - [`KvmHost::run`] boots the outer host once for a [`Job`]: files and binaries (with the
//!   shared libraries `ldd` names) copied in at the paths given, a shell command, a timeout.
//!   It returns the command's exit status and output, the files it left in
//!   [`Job::RESULTS_DIR`], and the whole serial log. A hung outer VM is killed at the
//!   timeout and the failure shows its serial log.
//! - [`nested_test`] runs the body of the *current test* where KVM boots Linux: directly on
//!   a host with hardware KVM, else by re-running this very test binary, filtered to this
//!   test, inside the outer host. Any test crate can use it.
//!
//! The outer kernel and its modules come from Debian's `linux-image-amd64`
//! (`outer-kernel.sh`: apt, cached in `~/.cache/vmrun/kvmhost/<version>`). Missing QEMU, or a
//! QEMU whose TCG has no SVM, is a [`Skip`] with the reason. Only AMD SVM is emulated by
//! TCG: Intel VMX paths of KVM are not reached here.

mod job;
mod nested;
mod outer;
mod qemu;

pub use job::{Job, Outcome};
pub use nested::{inside_outer_host, nested_test, NestedInputs};
pub use outer::{debian_kernel, KvmHost, RunError};
pub use vmrun_test_skip::Skip;
