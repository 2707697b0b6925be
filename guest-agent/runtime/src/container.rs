//! Handles to containers and exec'd processes.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::unistd::Pid;

use crate::state::{OciState, StateFile, Status, OCI_VERSION};

/// A created (or loaded) container.
#[derive(Debug)]
pub struct Container {
    /// The container id.
    pub id: String,
    /// Its init process (a child of the caller of `create`/`run`), as the caller sees it.
    pub pid: Pid,
    /// The pty master with [`crate::Stdio::Terminal`] (only on the handle `create`/`run` returned).
    pub console: Option<OwnedFd>,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The root filesystem (absolute).
    pub rootfs: PathBuf,
    /// Cgroup path relative to each hierarchy root.
    pub cgroups_path: PathBuf,
    /// Annotations from the spec.
    pub annotations: HashMap<String, String>,
    pub(crate) state: StateFile,
}

impl Container {
    pub(crate) fn from_state(state: StateFile, console: Option<OwnedFd>) -> Self {
        Container {
            id: state.id.clone(),
            pid: Pid::from_raw(state.pid),
            console,
            bundle: state.bundle.clone(),
            rootfs: state.rootfs.clone(),
            cgroups_path: state.cgroups_path.clone(),
            annotations: state.annotations.clone(),
            state,
        }
    }

    /// The status now (checks that the init process still lives).
    pub fn status(&self) -> Status {
        self.state.current_status()
    }

    /// The OCI state document.
    pub fn oci_state(&self) -> OciState {
        let status = self.status();
        OciState {
            oci_version: OCI_VERSION.to_owned(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid.as_raw()
            },
            bundle: self.bundle.clone(),
            annotations: self.annotations.clone(),
        }
    }

    /// Seconds since the epoch when the container was created.
    pub fn created(&self) -> u64 {
        self.state.created
    }
}

/// A process started by [`crate::Runtime::exec`]: a child of the caller.
#[derive(Debug)]
pub struct ExecProcess {
    /// Its pid as the caller sees it.
    pub pid: Pid,
    /// The pty master with [`crate::Stdio::Terminal`].
    pub console: Option<OwnedFd>,
}
