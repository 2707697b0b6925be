//! [`Runtime`]: create, start, run, load, list (kill, delete, pause and the
//! like are in `control.rs`, exec in `exec.rs`).

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use oci_spec::runtime::Spec;

use crate::cgroup::Cgroup;
use crate::container::Container;
use crate::error::RuntimeError;
use crate::init::{self, InitPlan};
use crate::namespaces::{self, NamespacePlan};
use crate::process::ProcessPlan;
use crate::rootfs::RootfsPlan;
use crate::state::{self, StateFile, Status, START_SOCKET};
use crate::stdio::{Stdio, StdioPlan};
use crate::sync::{Message, SyncSocket};

/// Default state root of the library.
pub const DEFAULT_STATE_ROOT: &str = "/run/vmrun/runtime";

/// An OCI runtime keeping its state under one directory.
#[derive(Debug, Clone)]
pub struct Runtime {
    state_root: PathBuf,
}

/// Whether the child waits for `start` or execs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launch {
    Create,
    Run,
}

/// Removes a half-made container's state directory unless disarmed.
struct StateDirGuard<'a>(Option<&'a Path>);

impl Drop for StateDirGuard<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId(id.to_owned()))
    }
}

/// The start socket of the container whose state directory is `dir`.
fn socket_path(dir: &Path) -> PathBuf {
    dir.join(START_SOCKET)
}

impl Runtime {
    /// A runtime with state under `state_root` (created on first use).
    pub fn new(state_root: impl Into<PathBuf>) -> Self {
        Runtime {
            state_root: state_root.into(),
        }
    }

    /// The state root.
    pub fn state_root(&self) -> &Path {
        &self.state_root
    }

    pub(crate) fn dir(&self, id: &str) -> PathBuf {
        self.state_root.join(id)
    }

    /// Creates the container: its init process is forked as a child of the
    /// caller (reap it with `waitpid`), fully set up, and blocked before exec
    /// until [`Runtime::start`].
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        spec: &Spec,
        stdio: Stdio,
    ) -> Result<Container, RuntimeError> {
        self.spawn(id, bundle, spec, stdio, Launch::Create)
    }

    /// Create and start in one step (no start socket, one round trip less).
    /// Errors from exec come back from this call.
    pub fn run(
        &self,
        id: &str,
        bundle: &Path,
        spec: &Spec,
        stdio: Stdio,
    ) -> Result<Container, RuntimeError> {
        self.spawn(id, bundle, spec, stdio, Launch::Run)
    }

    /// Releases a created container's exec; errors from exec itself
    /// (`ExecutableNotFound`, `PermissionDenied`, ...) come back here.
    pub fn start(&self, container: &mut Container) -> Result<(), RuntimeError> {
        let status = container.status();
        if status != Status::Created {
            return Err(RuntimeError::InvalidState {
                id: container.id.clone(),
                status: status.to_string(),
                action: "start",
            });
        }
        let dir = self.dir(&container.id);
        let path = socket_path(&dir);
        let conn = crate::start_socket::connect(&dir)
            .map_err(|e| RuntimeError::sys("connect to container init", e))?;
        let _ = std::fs::remove_file(&path);
        match conn.recv() {
            Ok(Message::Eof) => {
                container.state.status = Status::Running;
                container.state.write(&dir)
            }
            // The init exits after reporting; the caller reaps it.
            Ok(Message::Error(e)) => Err(e.into()),
            Ok(_) => Err(RuntimeError::Setup(
                "unexpected message from container init".into(),
            )),
            Err(e) => Err(RuntimeError::sys("wait for exec", e)),
        }
    }

    /// Starts a created container by id (for a caller other than the creator).
    pub fn start_id(&self, id: &str) -> Result<(), RuntimeError> {
        let mut container = self.load(id)?;
        self.start(&mut container)
    }

    /// Loads a container's handle from its state (no console).
    pub fn load(&self, id: &str) -> Result<Container, RuntimeError> {
        validate_id(id)?;
        Ok(Container::from_state(
            StateFile::read(&self.dir(id), id)?,
            None,
        ))
    }

    /// Ids of all containers with state here.
    pub fn list(&self) -> Result<Vec<String>, RuntimeError> {
        let entries = match std::fs::read_dir(&self.state_root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RuntimeError::io("list", &self.state_root, e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().join(state::STATE_FILE).exists())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn spawn(
        &self,
        id: &str,
        bundle: &Path,
        spec: &Spec,
        stdio: Stdio,
        launch: Launch,
    ) -> Result<Container, RuntimeError> {
        validate_id(id)?;
        let dir = self.dir(id);
        std::fs::create_dir_all(&self.state_root)
            .map_err(|e| RuntimeError::io("create", &self.state_root, e))?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::AlreadyExists(id.to_owned()))
            }
            Err(e) => return Err(RuntimeError::io("create", dir, e)),
        }
        let mut guard = StateDirGuard(Some(&dir));
        let bundle = bundle
            .canonicalize()
            .map_err(|e| RuntimeError::io("bundle", bundle, e))?;
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| RuntimeError::InvalidSpec("linux section is missing".into()))?;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| RuntimeError::InvalidSpec("process is missing".into()))?;
        let namespaces =
            NamespacePlan::from_spec(linux.namespaces().as_deref().unwrap_or_default())?;
        if !namespaces.has_new_mount_ns() {
            return Err(RuntimeError::InvalidSpec(
                "a new mount namespace is required".into(),
            ));
        }
        let stdio = StdioPlan::prepare(stdio)?;
        let terminal = stdio.is_terminal();
        let rootfs = RootfsPlan::from_spec(spec, &bundle, namespaces.new_cgroup)?;
        let seccomp = linux
            .seccomp()
            .as_ref()
            .map(crate::security::compile_seccomp)
            .transpose()?;
        let process_plan = ProcessPlan::from_spec(process, seccomp, true)?;
        let cgroups_path = linux
            .cgroups_path()
            .clone()
            .unwrap_or_else(|| Path::new("/vmrun").join(id));
        let cgroup = Cgroup::open(&cgroups_path)?;
        let start_listener = match launch {
            Launch::Create => Some(
                crate::start_socket::listen(&dir)
                    .map_err(|e| RuntimeError::sys("listen on start socket", e))?,
            ),
            Launch::Run => None,
        };
        // cgroup v1: directories and limits before fork; the child joins by itself.
        let self_join = cgroup
            .prepare_self_join()
            .and_then(|join| {
                if let (Some(_), Some(resources)) = (&join, linux.resources()) {
                    cgroup.set(resources)?;
                }
                Ok(join)
            })
            .inspect_err(|_| {
                let _ = cgroup.remove();
            })?;
        let parent_joins = self_join.is_none();
        let (parent_end, child_end) =
            SyncSocket::pair().map_err(|e| RuntimeError::sys("socketpair", e))?;
        let plan = InitPlan {
            namespaces,
            stdio,
            rootfs,
            process: process_plan,
            hostname: spec.hostname().clone(),
            domainname: spec
                .domainname()
                .as_deref()
                .map(|d| {
                    CString::new(d)
                        .map_err(|_| RuntimeError::InvalidSpec("NUL in domainname".into()))
                })
                .transpose()?,
            sync: child_end,
            start_listener,
            cgroup_tasks: self_join.unwrap_or_default(),
        };
        let pid = namespaces::fork_into(&plan.namespaces.pid, || init::run(&plan))?;
        let rootfs_path = plan.rootfs.rootfs.clone();
        drop(plan); // the parent's copies of the child's fds

        let mut console = None;
        let setup = (|| {
            if parent_joins {
                cgroup.apply(pid)?;
                if let Some(resources) = linux.resources() {
                    cgroup.set(resources)?;
                }
            }
            parent_end
                .send_go()
                .map_err(|e| RuntimeError::sys("release container init", e))?;
            loop {
                let message = parent_end
                    .recv()
                    .map_err(|e| RuntimeError::sys("wait for container init", e))?;
                let done = matches!(
                    (&message, launch),
                    (Message::Ready, Launch::Create) | (Message::Eof, Launch::Run)
                );
                match message {
                    Message::Console(master) if terminal && console.is_none() => {
                        console = Some(master);
                        continue;
                    }
                    _ if done && terminal && console.is_none() => {
                        return Err(RuntimeError::Setup(
                            "container init did not send its terminal".into(),
                        ))
                    }
                    _ if done => return Ok(()),
                    Message::Error(e) => return Err(e.into()),
                    Message::Eof => {
                        return Err(RuntimeError::Setup(
                            "container init exited during setup".into(),
                        ))
                    }
                    other => {
                        return Err(RuntimeError::Setup(format!(
                            "unexpected message {other:?} from container init"
                        )))
                    }
                }
            }
        })();
        let pid_start_time = state::process_start_time(pid);
        let setup = setup.and_then(|()| {
            let state = StateFile {
                id: id.to_owned(),
                pid: pid.as_raw(),
                // A `run` child may already have exited: then it is stopped.
                pid_start_time: pid_start_time.unwrap_or(0),
                bundle: bundle.clone(),
                rootfs: rootfs_path,
                status: if launch == Launch::Run {
                    Status::Running
                } else {
                    Status::Created
                },
                cgroups_path: cgroups_path.clone(),
                created: state::now_secs(),
                annotations: spec.annotations().clone().unwrap_or_default(),
            };
            state.write(&dir)?;
            Ok(state)
        });
        match setup {
            Ok(state) => {
                guard.0 = None;
                Ok(Container::from_state(state, console))
            }
            Err(e) => {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                if let Err(cleanup) = cgroup.remove() {
                    tracing::warn!(id, "removing cgroup after failed create: {cleanup}");
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for good in ["abc", "a-b_c.d", "0123456789abcdef"] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
