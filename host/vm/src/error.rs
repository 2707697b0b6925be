//! Errors of the VM backends.

use std::path::PathBuf;

use crate::hybrid_vsock::HybridVsockError;

/// What went wrong launching, driving or stopping a VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The spec is unusable; nothing was started. `field` names the `VmSpec` field.
    #[error("invalid VM spec: {field}: {reason}")]
    InvalidSpec { field: &'static str, reason: String },
    /// The chosen backend cannot run on this host (no /dev/kvm, PVM, a tool missing).
    #[error("the {backend} VM backend is unusable here: {reason}")]
    BackendUnavailable {
        backend: &'static str,
        reason: String,
    },
    /// `auto|vmm|qemu` was not one of those.
    #[error("unknown VM backend {0:?} (want auto, vmm or qemu)")]
    UnknownBackend(String),
    /// A monitor process could not be started.
    #[error("starting {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A monitor process started but the VM did not come up; `stderr` is its last words.
    #[error("{program} did not start the VM ({status}): {stderr}")]
    StartFailed {
        program: &'static str,
        status: String,
        stderr: String,
    },
    /// The VM did not get ready (its vsock socket did not appear) in time.
    #[error("the VM was not ready within {seconds} s: {what}")]
    StartTimeout { seconds: u64, what: String },
    /// Connecting to a guest vsock port failed.
    #[error(transparent)]
    Vsock(#[from] HybridVsockError),
    /// The VM stopped while we were trying to reach it.
    #[error("the VM has stopped: {0}")]
    Stopped(String),
    /// A system call on the monitor processes or the VM's files failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl VmError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        VmError::Io {
            what: what.into(),
            source,
        }
    }
}
