//! Creating, starting and cleaning up the watched process through the runtime library.

use std::os::fd::OwnedFd;
use std::path::Path;

use vmrun_runtime::{Container, Runtime, RuntimeError, Stdio};
use vmrun_shim::frame::Stream;
use vmrun_shim::{FailureKind, OverlayRootfs, ShimConfig, ShimFailure, ShimMode};

/// A process that exists (container) or is ready to be made (exec), not yet running.
pub struct Prepared {
    runtime: Runtime,
    pending: Pending,
    rootfs: Option<OverlayRootfs>,
    stdio: Option<PipeSet>,
    cgroups_path: Option<std::path::PathBuf>,
}

enum Pending {
    Container(Box<Container>),
    Exec(Box<oci_spec::runtime::Process>),
    Started,
}

/// Pipes for a process without a terminal: our ends and the child's ends.
struct PipeSet {
    stdout_r: OwnedFd,
    stderr_r: OwnedFd,
    stdin_w: Option<OwnedFd>,
    child: Option<ChildEnds>,
}

struct ChildEnds {
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// What the relay needs once the process runs.
pub struct Started {
    /// Pid in the host's pid namespace; a child of this shim.
    pub pid: i32,
    /// Output fds and the stream each feeds.
    pub outputs: Vec<(Stream, OwnedFd)>,
    /// Where attach clients' stdin goes.
    pub stdin: Option<OwnedFd>,
    /// The pty master, for resizes (also in `outputs` and `stdin` as dups).
    pub console: Option<OwnedFd>,
}

fn failure(kind: FailureKind, message: impl Into<String>) -> ShimFailure {
    ShimFailure {
        message: message.into(),
        kind,
    }
}

fn from_runtime(e: RuntimeError) -> ShimFailure {
    let kind = match &e {
        RuntimeError::ExecutableNotFound { .. } => FailureKind::NotFound,
        RuntimeError::PermissionDenied { .. } => FailureKind::PermissionDenied,
        _ => FailureKind::Other,
    };
    failure(kind, e.to_string())
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ShimFailure> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| failure(FailureKind::Other, format!("creating a pipe: {e}")))
}

fn pipe_set(open_stdin: bool) -> Result<PipeSet, ShimFailure> {
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let (stdin_w, stdin_r) = if open_stdin {
        let (r, w) = pipe()?;
        (Some(w), Some(r))
    } else {
        (None, None)
    };
    Ok(PipeSet {
        stdout_r,
        stderr_r,
        stdin_w,
        child: Some(ChildEnds {
            stdin: stdin_r,
            stdout: stdout_w,
            stderr: stderr_w,
        }),
    })
}

fn child_stdio(config: &ShimConfig, pipes: &mut Option<PipeSet>) -> Stdio {
    if config.tty {
        return Stdio::Terminal;
    }
    match pipes.as_mut().and_then(|p| p.child.take()) {
        Some(c) => Stdio::Fds {
            stdin: c.stdin,
            stdout: c.stdout,
            stderr: c.stderr,
        },
        None => Stdio::Inherit,
    }
}

/// Mount the root filesystem and create the process, blocked before `exec`.
pub fn prepare(config: &ShimConfig) -> Result<Prepared, ShimFailure> {
    let runtime = Runtime::new(&config.runtime_root);
    let mut stdio = if config.tty {
        None
    } else {
        Some(pipe_set(config.open_stdin)?)
    };
    match &config.mode {
        ShimMode::Exec { process, .. } => Ok(Prepared {
            runtime,
            pending: Pending::Exec(process.clone()),
            rootfs: None,
            stdio,
            cgroups_path: None,
        }),
        ShimMode::Container {
            bundle,
            rootfs,
            user,
        } => {
            if let Some(r) = rootfs {
                vmrun_runtime::mount_overlay(&top_first(&r.layers), &r.upper, &r.work, &r.target)
                    .map_err(from_runtime)?;
            }
            let result = create_container(config, &runtime, bundle, user.as_deref(), &mut stdio);
            match result {
                Ok((container, cgroups_path)) => Ok(Prepared {
                    runtime,
                    pending: Pending::Container(Box::new(container)),
                    rootfs: rootfs.clone(),
                    stdio,
                    cgroups_path,
                }),
                Err(e) => {
                    if let Some(r) = rootfs {
                        let _ = vmrun_runtime::unmount(&r.target);
                    }
                    Err(e)
                }
            }
        }
    }
}

fn top_first(layers: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    layers.iter().rev().cloned().collect()
}

fn create_container(
    config: &ShimConfig,
    runtime: &Runtime,
    bundle: &Path,
    user: Option<&str>,
    stdio: &mut Option<PipeSet>,
) -> Result<(Container, Option<std::path::PathBuf>), ShimFailure> {
    let spec_path = bundle.join("config.json");
    let mut spec = oci_spec::runtime::Spec::load(&spec_path).map_err(|e| {
        failure(
            FailureKind::Other,
            format!("loading {}: {e}", spec_path.display()),
        )
    })?;
    // No user is root, resolved all the same: dockerd gives root its groups too
    // (`groups=0(root),10(wheel)` in busybox).
    {
        let user = user.unwrap_or("");
        let root = spec
            .root()
            .as_ref()
            .map(|r| bundle.join(r.path()))
            .unwrap_or_else(|| bundle.join("rootfs"));
        apply_user(&mut spec, &root, user)?;
    }
    let child = child_stdio(config, stdio);
    let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let container = runtime
        .create(&config.id, bundle, &spec, child)
        .map_err(from_runtime)?;
    Ok((container, cgroups_path))
}

fn apply_user(
    spec: &mut oci_spec::runtime::Spec,
    rootfs: &Path,
    user: &str,
) -> Result<(), ShimFailure> {
    let resolved = vmrun_runtime::user::resolve_user(rootfs, user)
        .map_err(|e| failure(FailureKind::BadUser, e.to_string()))?;
    let Some(process) = spec.process_mut() else {
        return Ok(());
    };
    let mut u = process.user().clone();
    u.set_uid(resolved.uid);
    u.set_gid(resolved.gid);
    u.set_additional_gids(Some(resolved.additional_gids.clone()));
    process.set_user(u);
    // HOME follows the user, as docker does, unless the container sets it.
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", resolved.home.display()));
        process.set_env(Some(env));
    }
    Ok(())
}

impl Prepared {
    /// Let the process run. Errors from `exec` itself (no such command) come back here.
    pub fn start(&mut self, config: &ShimConfig) -> Result<Started, ShimFailure> {
        let pending = std::mem::replace(&mut self.pending, Pending::Started);
        let (pid, console) = match pending {
            Pending::Container(mut c) => {
                let console = c.console.take();
                if let (Some(m), Some([h, w])) = (&console, config.console_size) {
                    let _ = vmrun_shim::set_window_size(m, h, w);
                }
                let pid = c.pid.as_raw();
                self.runtime.start(&mut c).map_err(from_runtime)?;
                (pid, console)
            }
            Pending::Exec(mut process) => {
                // An exec runs at once: its terminal is sized by the child before the
                // process starts (`consoleSize`), not by us afterwards (`stty size` would
                // race us and read 0x0).
                if let (Some([h, w]), None) = (config.console_size, process.console_size()) {
                    if let Ok(size) = oci_spec::runtime::BoxBuilder::default()
                        .height(u64::from(h))
                        .width(u64::from(w))
                        .build()
                    {
                        process.set_console_size(Some(size));
                    }
                }
                let stdio = child_stdio(config, &mut self.stdio);
                let p = self
                    .runtime
                    .exec(&config.id, &process, stdio)
                    .map_err(from_runtime)?;
                if let (Some(m), Some([h, w])) = (&p.console, config.console_size) {
                    let _ = vmrun_shim::set_window_size(m, h, w);
                }
                (p.pid.as_raw(), p.console)
            }
            Pending::Started => {
                return Err(failure(
                    FailureKind::Other,
                    "the process was already started",
                ))
            }
        };
        let mut started = Started {
            pid,
            outputs: Vec::new(),
            stdin: None,
            console: None,
        };
        if let Some(master) = console {
            let dup = |fd: &OwnedFd| {
                fd.try_clone()
                    .map_err(|e| failure(FailureKind::Other, format!("dup of the pty: {e}")))
            };
            started.outputs.push((Stream::Stdout, dup(&master)?));
            if config.open_stdin {
                started.stdin = Some(dup(&master)?);
            }
            started.console = Some(master);
        } else if let Some(p) = self.stdio.take() {
            drop(p.child);
            started.outputs.push((Stream::Stdout, p.stdout_r));
            started.outputs.push((Stream::Stderr, p.stderr_r));
            started.stdin = p.stdin_w;
        }
        Ok(started)
    }

    /// Whether the container's cgroup saw the OOM killer.
    pub fn oom_killed(&self) -> bool {
        let Some(path) = &self.cgroups_path else {
            return false;
        };
        match vmrun_cgroups::manager(path).and_then(|m| m.stats()) {
            Ok(stats) => stats.oom_kill_count > 0,
            Err(e) => {
                tracing::warn!("reading OOM count: {e}");
                false
            }
        }
    }

    /// Release what the container held: runtime state, cgroup, root filesystem mount.
    pub fn cleanup(&mut self, config: &ShimConfig) {
        if let ShimMode::Container { .. } = config.mode {
            if let Err(e) = self.runtime.delete(&config.id, true) {
                tracing::warn!("deleting runtime state: {e}");
            }
            if let Some(r) = &self.rootfs {
                if let Err(e) = vmrun_runtime::unmount(&r.target) {
                    tracing::warn!("unmounting {}: {e}", r.target.display());
                }
            }
        }
    }
}
