//! Persisted container state (`<state_root>/<id>/state.json`) and the OCI
//! state document.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

/// The OCI runtime-spec version this runtime reports.
pub const OCI_VERSION: &str = "1.0.2";

/// The name of the state file inside a container's state directory.
pub(crate) const STATE_FILE: &str = "state.json";
/// The socket a created container waits on until `start`.
pub(crate) const START_SOCKET: &str = "start.sock";

/// A container's lifecycle status, as the OCI state reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Set up, waiting for `start`.
    Created,
    /// The user's process runs.
    Running,
    /// The container's processes are frozen (cgroup freezer).
    Paused,
    /// The process has exited (or its pid is gone).
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// The OCI state document (`runc state` output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// What the runtime writes to `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StateFile {
    pub(crate) id: String,
    pub(crate) pid: i32,
    /// `starttime` of the pid (field 22 of `/proc/<pid>/stat`), to notice pid reuse.
    pub(crate) pid_start_time: u64,
    pub(crate) bundle: PathBuf,
    pub(crate) rootfs: PathBuf,
    /// `Created`, `Running` or `Paused` as last recorded; liveness is checked on read.
    pub(crate) status: Status,
    pub(crate) cgroups_path: PathBuf,
    /// Seconds since the epoch.
    pub(crate) created: u64,
    #[serde(default)]
    pub(crate) annotations: HashMap<String, String>,
}

impl StateFile {
    pub(crate) fn read(dir: &Path, id: &str) -> Result<Self, RuntimeError> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_owned()))
            }
            Err(e) => return Err(RuntimeError::io("read", path, e)),
        };
        serde_json::from_slice(&text).map_err(|e| RuntimeError::State {
            id: id.to_owned(),
            message: e.to_string(),
        })
    }

    /// Writes atomically (temp file + rename).
    pub(crate) fn write(&self, dir: &Path) -> Result<(), RuntimeError> {
        let tmp = dir.join(".state.json.tmp");
        let bytes = serde_json::to_vec(self).map_err(|e| RuntimeError::State {
            id: self.id.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&tmp, bytes).map_err(|e| RuntimeError::io("write", &tmp, e))?;
        let path = dir.join(STATE_FILE);
        std::fs::rename(&tmp, &path).map_err(|e| RuntimeError::io("rename to", path, e))
    }

    /// The status now: the recorded one while the process lives.
    pub(crate) fn current_status(&self) -> Status {
        match process_start_time(Pid::from_raw(self.pid)) {
            Some(start) if start == self.pid_start_time => self.status,
            _ => Status::Stopped,
        }
    }
}

/// `starttime` of a live (not zombie) process, `None` when gone.
pub(crate) fn process_start_time(pid: Pid) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parens: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3; starttime is field 22.
    fields.nth(22 - 4)?.parse().ok()
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable() {
        let me = Pid::this();
        let t = process_start_time(me).unwrap();
        assert_eq!(process_start_time(me), Some(t));
        assert_eq!(process_start_time(Pid::from_raw(i32::MAX)), None);
    }

    #[test]
    fn state_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile {
            id: "c1".into(),
            pid: std::process::id() as i32,
            pid_start_time: process_start_time(Pid::this()).unwrap(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            status: Status::Running,
            cgroups_path: "/vmrun/c1".into(),
            created: now_secs(),
            annotations: HashMap::new(),
        };
        state.write(dir.path()).unwrap();
        let back = StateFile::read(dir.path(), "c1").unwrap();
        assert_eq!(back.current_status(), Status::Running);
        assert_eq!(back.bundle, Path::new("/b"));
        assert!(matches!(
            StateFile::read(&dir.path().join("nope"), "x"),
            Err(RuntimeError::NotFound(_))
        ));
    }
}
