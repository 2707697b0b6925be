//! Typed errors of the cgroup managers. Every variant that touches a file names it.

use std::path::PathBuf;

/// An error from a cgroup operation.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A read, write, mkdir or rmdir on a cgroup file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted ("write", "read", "mkdir", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A cgroup file held something we could not parse.
    #[error("cannot parse {path}: unexpected content {content:?}")]
    Parse {
        /// The file that was read.
        path: PathBuf,
        /// What it contained (or the offending part).
        content: String,
    },
    /// No cgroup filesystem was found at all.
    #[error("no cgroup filesystem is mounted (looked in {0})")]
    NotMounted(PathBuf),
    /// A resource needs a v1 controller whose hierarchy is not mounted.
    #[error("cgroup v1 controller {0} is not mounted")]
    ControllerNotMounted(&'static str),
    /// The cgroups path cannot be used (for example it contains "..").
    #[error("invalid cgroups path {0}")]
    InvalidPath(PathBuf),
    /// A resource value from the spec is out of range.
    #[error("invalid value for {field}: {value}")]
    InvalidResource {
        /// The OCI field.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// Freezing or thawing did not settle in time.
    #[error("timed out waiting for {path} to report {state}")]
    Timeout {
        /// The state file polled.
        path: PathBuf,
        /// The state that was expected.
        state: &'static str,
    },
}

impl CgroupError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CgroupError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, content: impl Into<String>) -> Self {
        CgroupError::Parse {
            path: path.into(),
            content: content.into(),
        }
    }
}
