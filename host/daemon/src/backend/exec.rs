//! The OCI process of an exec, the same for every backend: the container's process with the
//! exec's command, terminal, environment, working directory and user.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

use super::{BackendError, ExecSpec};

/// `base` (the container's process) changed by `exec`. A user name is looked up in the
/// `/etc/passwd` under the root that `passwd_root` gives (asked only when a user is set).
pub(crate) fn exec_process(
    base: Option<&Process>,
    exec: &ExecSpec,
    passwd_root: impl FnOnce() -> Result<PathBuf, BackendError>,
) -> Result<Process, BackendError> {
    if exec.cmd.is_empty() {
        return Err(BackendError::BadRequest("No exec command specified".into()));
    }
    let mut process = base.cloned().unwrap_or_default();
    process.set_args(Some(exec.cmd.clone()));
    process.set_terminal(Some(exec.tty));
    let mut env = process.env().clone().unwrap_or_default();
    for kv in &exec.env {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    process.set_env(Some(env));
    if let Some(dir) = exec.workdir.as_deref().filter(|d| !d.is_empty()) {
        process.set_cwd(PathBuf::from(dir));
    }
    if let Some(user) = exec.user.as_deref().filter(|u| !u.is_empty()) {
        let root = passwd_root()?;
        let resolved = vmrun_runtime::user::resolve_user(Path::new(&root), user)
            .map_err(|e| BackendError::BadRequest(e.to_string()))?;
        let mut u = process.user().clone();
        u.set_uid(resolved.uid);
        u.set_gid(resolved.gid);
        u.set_additional_gids(Some(resolved.additional_gids));
        process.set_user(u);
    }
    Ok(process)
}
