//! Typed errors of the runtime library.
//!
//! Messages are shown to docker users, so the exec errors read like docker's
//! (`exec: "foo": executable file not found in $PATH`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Every way a runtime operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The container id is empty or contains characters other than `[A-Za-z0-9_.-]`.
    #[error("invalid container id {0:?}: only [A-Za-z0-9_.-] are allowed")]
    InvalidId(String),
    /// A container with this id already has a state directory.
    #[error("container {0} already exists")]
    AlreadyExists(String),
    /// No state directory for this id.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// The container's init has exited (runc's wording, which containerd's
    /// shim and podman match on to tell "already gone" apart).
    #[error("container not running: {0} is stopped")]
    NotRunning(String),
    /// The operation does not fit the container's current status.
    #[error("container {id} is {status}: cannot {action}")]
    InvalidState {
        /// Container id.
        id: String,
        /// Its current status.
        status: String,
        /// What was attempted.
        action: &'static str,
    },
    /// The OCI spec asks for something invalid or unsupported.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The process's executable does not exist in the container.
    #[error("{}", not_found_message(name))]
    ExecutableNotFound {
        /// The name as given in `process.args[0]`.
        name: String,
    },
    /// The executable exists but may not be executed.
    #[error("exec: {name:?}: permission denied")]
    PermissionDenied {
        /// The name as given in `process.args[0]`.
        name: String,
    },
    /// `execve` failed for another reason.
    #[error("exec: {name:?}: {message}")]
    ExecFailed {
        /// The name as given in `process.args[0]`.
        name: String,
        /// What `execve` reported.
        message: String,
    },
    /// `process.user` names a user the image's `/etc/passwd` lacks.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    /// A group name the image's `/etc/group` lacks.
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    /// A step of the container's setup, done in the child, failed.
    #[error("container setup failed: {0}")]
    Setup(String),
    /// The cgroup manager failed.
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// Seccomp or capabilities failed.
    #[error("security: {0}")]
    Security(String),
    /// The persisted state is unreadable.
    #[error("state of container {id}: {message}")]
    State {
        /// Container id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Sys {
        /// What was being done.
        context: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{context} {path}: {source}", path = path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn not_found_message(name: &str) -> String {
    if name.contains('/') {
        format!("exec: {name:?}: stat {name}: no such file or directory")
    } else {
        format!("exec: {name:?}: executable file not found in $PATH")
    }
}

impl RuntimeError {
    pub(crate) fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        RuntimeError::Sys {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RuntimeError::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

/// An error raised in the container's child process, sent to the parent over
/// the sync channel and turned back into a [`RuntimeError`] there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum ChildError {
    /// The executable was not found (in `$PATH` or at its path).
    NotFound(String),
    /// `execve` returned `EACCES`.
    PermissionDenied(String),
    /// `execve` failed otherwise: name, message.
    Exec(String, String),
    /// Any setup step: a message naming the step and the errno.
    Setup(String),
}

impl ChildError {
    /// A failed system call: `context: errno description`.
    pub(crate) fn sys(context: &str, errno: nix::Error) -> Self {
        ChildError::Setup(format!("{context}: {}", errno.desc()))
    }
}

impl From<ChildError> for RuntimeError {
    fn from(e: ChildError) -> Self {
        match e {
            ChildError::NotFound(name) => RuntimeError::ExecutableNotFound { name },
            ChildError::PermissionDenied(name) => RuntimeError::PermissionDenied { name },
            ChildError::Exec(name, message) => RuntimeError::ExecFailed { name, message },
            ChildError::Setup(message) => RuntimeError::Setup(message),
        }
    }
}
