//! [`Runtime::exec`]: a new process inside a running container.

use std::os::fd::{OwnedFd, RawFd};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use oci_spec::runtime::{Process, Spec};

use crate::cgroup::Cgroup;
use crate::container::ExecProcess;
use crate::error::{ChildError, RuntimeError};
use crate::init::{close_fds_except, exit_child, wait_for_parent};
use crate::namespaces::{self, NamespacePlan};
use crate::process::ProcessPlan;
use crate::state::Status;
use crate::stdio::{Stdio, StdioPlan};
use crate::sync::{Message, SyncSocket};
use crate::Runtime;

struct ExecPlan {
    namespaces: NamespacePlan,
    stdio: StdioPlan,
    process: ProcessPlan,
    sync: SyncSocket,
    /// cgroup v1 `tasks` files to join by writing `0` (empty: the parent moves us).
    cgroup_tasks: Vec<OwnedFd>,
}

impl Runtime {
    /// Starts `process` inside container `id`: it joins the namespaces of the
    /// container's init (PID namespace included: the new process is a member,
    /// and a child of the caller) and its cgroup, then applies user, env,
    /// cwd, capabilities, no_new_privs and the container's seccomp filter.
    pub fn exec(
        &self,
        id: &str,
        process: &Process,
        stdio: Stdio,
    ) -> Result<ExecProcess, RuntimeError> {
        let container = self.load(id)?;
        let status = container.status();
        if status != Status::Running {
            return Err(RuntimeError::InvalidState {
                id: id.to_owned(),
                status: status.to_string(),
                action: "exec",
            });
        }
        // The container's seccomp filter applies to exec'd processes too.
        let seccomp = match Spec::load(container.bundle.join("config.json")) {
            Ok(spec) => spec
                .linux()
                .as_ref()
                .and_then(|l| l.seccomp().as_ref())
                .map(crate::security::compile_seccomp)
                .transpose()?,
            Err(_) => None,
        };
        let namespaces = NamespacePlan::of_process(container.pid)?;
        let stdio = StdioPlan::prepare(stdio)?;
        let terminal = stdio.is_terminal();
        let process = ProcessPlan::from_spec(process, seccomp, false)?;
        let cgroup = Cgroup::open(&container.cgroups_path)?;
        let self_join = cgroup.prepare_self_join()?;
        let parent_joins = self_join.is_none();
        let (parent_end, child_end) =
            SyncSocket::pair().map_err(|e| RuntimeError::sys("socketpair", e))?;
        let plan = ExecPlan {
            namespaces,
            stdio,
            process,
            sync: child_end,
            cgroup_tasks: self_join.unwrap_or_default(),
        };
        let pid = namespaces::fork_into(&plan.namespaces.pid, || exec_child(&plan))?;
        drop(plan);
        let mut console = None;
        let result = (|| {
            if parent_joins {
                cgroup.apply(pid)?;
            }
            parent_end
                .send_go()
                .map_err(|e| RuntimeError::sys("release exec process", e))?;
            loop {
                match parent_end
                    .recv()
                    .map_err(|e| RuntimeError::sys("wait for exec", e))?
                {
                    Message::Console(master) if terminal => console = Some(master),
                    Message::Eof if terminal && console.is_none() => {
                        return Err(RuntimeError::Setup(
                            "exec process exited before making its terminal".into(),
                        ))
                    }
                    Message::Eof => return Ok(()),
                    Message::Error(e) => return Err(RuntimeError::from(e)),
                    other => {
                        return Err(RuntimeError::Setup(format!(
                            "unexpected message {other:?} from exec process"
                        )))
                    }
                }
            }
        })();
        match result {
            Ok(()) => Ok(ExecProcess { pid, console }),
            Err(e) => {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                Err(e)
            }
        }
    }
}

fn exec_child(plan: &ExecPlan) -> ! {
    let error = (|| -> Result<ChildError, ChildError> {
        plan.stdio.apply()?;
        crate::cgroup::join_self(&plan.cgroup_tasks)?;
        let mut keep: Vec<RawFd> = plan.namespaces.fds().collect();
        keep.push(plan.sync.raw());
        keep.extend(plan.stdio.console_socket());
        close_fds_except(&mut keep);
        namespaces::enter(&plan.namespaces)?;
        if plan.stdio.is_terminal() {
            // The container's devpts, as its mount namespace shows it.
            crate::console::setup(
                &plan.sync,
                false,
                plan.process.console_size(),
                plan.stdio.console_socket(),
            )?;
        }
        wait_for_parent(&plan.sync)?;
        Ok(plan.process.finish_and_exec())
    })()
    .unwrap_or_else(|e| e);
    plan.sync.send_error(&error);
    exit_child(127)
}
