//! OCI container runtime library: namespaces, rootfs, cgroups, seccomp, capabilities.
//!
//! Used in-process by the per-container monitor (`vmrun-shim`) and by the
//! guest agent; plain fork/exec, no async runtime.
//!
//! # API
//! ```text
//! Runtime::new(state_root)                                   // one dir per container with state.json
//! Runtime::create(&self, id, bundle, &Spec, Stdio) -> Container   // init forked as a CHILD OF THE CALLER,
//!                                                            //   set up, blocked before exec
//! Runtime::start(&self, &mut Container)                      // releases exec; exec errors come back
//! Runtime::start_id(&self, id)                               // same, from another process
//! Runtime::run(&self, id, bundle, &Spec, Stdio) -> Container // create + start, fastest path
//! Runtime::load(&self, id) -> Container;  Runtime::list(&self) -> Vec<String>
//! Runtime::kill(&self, id, Signal);  Runtime::kill_all(&self, id, Signal)  // init / every process
//! Runtime::delete(&self, id, force)                          // cgroup + state dir
//! Runtime::pause(&self, id);  Runtime::resume(&self, id)     // cgroup freezer (v1 and v2)
//! Runtime::pids(&self, id) -> Vec<Pid>                       // processes in the cgroup
//! Runtime::update(&self, id, &LinuxResources)                // new cgroup limits
//! Runtime::exec(&self, id, &Process, Stdio) -> ExecProcess  // joins ns (pid too) + cgroup
//! Runtime::stats(&self, id) -> CgroupStats
//! mount_overlay(lowers, upper, work, target); mount_overlay_read_only(lowers, target); unmount(target)
//! user::resolve_user(rootfs, "name:group") -> ResolvedUser
//! ```
//!
//! # How a container starts
//! The parent (the caller) plans everything first — namespaces to create and
//! join (opening their files), mounts, devices, the process's argv/env and
//! the `$PATH` candidates, the seccomp filter (compiled) — so mistakes in the
//! spec fail before any fork. It then forks once: for a new PID namespace the
//! calling thread unshares `CLONE_NEWPID`, forks and switches back, so the
//! child is PID 1 there and still the caller's child.
//!
//! On cgroup v1 the parent creates the cgroup and sets its limits before the
//! fork, and the child joins it itself (`"0"` into each `tasks` file, which
//! skips the kernel's slow global lock; see `cgroup.rs`); on v2 the parent
//! moves the child while it sets up. The child sets up stdio, enters
//! namespaces and builds the rootfs (`spec.mounts`, devices), waiting on a
//! `SOCK_SEQPACKET` pair for the parent's go-ahead only before the first
//! cgroup mount or `pivot_root`. After `pivot_root` it makes the terminal, if
//! asked, from the container's own devpts (the master goes to the parent with
//! `SCM_RIGHTS`), then masked and read-only paths, and either execs at once
//! (`run`) or reports ready and accepts a connection on
//! `<state>/<id>/start.sock` (`create`/`start`, so a different process may
//! start it; reached through `/proc/self/fd/<dirfd>/` so any state root
//! length works). Every channel end is `CLOEXEC`: end of
//! file after the go-ahead means exec succeeded; otherwise the child sends a
//! serialized error, which becomes a [`RuntimeError`] such as
//! [`RuntimeError::ExecutableNotFound`].
//!
//! The caller reaps the container's init (and exec'd processes) itself with
//! `waitpid`; `delete` after that removes the cgroup and state.

mod cgroup;
mod cgroupfs;
mod console;
mod container;
mod control;
mod devices;
mod error;
mod exec;
mod init;
mod mounts;
mod namespaces;
mod overlay;
mod process;
mod rootfs;
mod runtime;
mod security;
mod start_socket;
mod state;
mod stdio;
mod sync;
pub mod user;

pub use container::{Container, ExecProcess};
pub use error::RuntimeError;
pub use overlay::{mount_overlay, mount_overlay_read_only, unmount};
pub use runtime::{Runtime, DEFAULT_STATE_ROOT};
pub use state::{OciState, Status, OCI_VERSION};
pub use stdio::Stdio;
pub use user::{resolve_user, ResolvedUser};
pub use vmrun_cgroups::CgroupStats;
