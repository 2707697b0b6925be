//! create, start, run, state, kill, delete, list.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde::Serialize;
use vmrun_runtime::{Container, Runtime, RuntimeError, Status};

use crate::cli::{CreateArgs, OutputFormat, RunArgs};
use crate::{check_preserve_fds, console, load_spec, write_pid_file};

/// `runc state`'s document: the OCI state plus runc's `rootfs`, `created`
/// and `owner` (go-runc decodes `created` as a timestamp).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateJson {
    oci_version: String,
    id: String,
    pid: i32,
    status: Status,
    bundle: PathBuf,
    rootfs: PathBuf,
    created: String,
    owner: String,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    annotations: std::collections::HashMap<String, String>,
}

fn state_json(container: &Container) -> StateJson {
    let oci = container.oci_state();
    let created = i64::try_from(container.created())
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    StateJson {
        oci_version: oci.oci_version,
        id: oci.id,
        pid: oci.pid,
        status: oci.status,
        bundle: oci.bundle,
        rootfs: container.rootfs.clone(),
        created,
        owner: String::new(),
        annotations: oci.annotations,
    }
}

fn is_terminal(spec: &oci_spec::runtime::Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// OCI hooks are not run (`features` lists none): say so in the log rather
/// than pass over them silently.
fn warn_unsupported(spec: &oci_spec::runtime::Spec) {
    let Some(hooks) = spec.hooks() else { return };
    let lists = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    let present: Vec<&str> = lists
        .iter()
        .filter(|(_, list)| list.as_ref().is_some_and(|l| !l.is_empty()))
        .map(|(name, _)| *name)
        .collect();
    if !present.is_empty() {
        tracing::warn!(
            "OCI hooks are not supported by vmrun-runtime; ignoring {}",
            present.join(", ")
        );
    }
}

/// `create`: the init is set up and waits for `start`; this process exits
/// (the init is re-parented to the caller's subreaper, as with runc).
pub(crate) fn create(runtime: &Runtime, args: CreateArgs) -> Result<i32> {
    check_preserve_fds(args.preserve_fds)?;
    let spec = load_spec(&args.bundle)?;
    warn_unsupported(&spec);
    let terminal = is_terminal(&spec);
    let socket = console::connect_for(terminal, true, args.console_socket.as_deref())?;
    let container = runtime
        .create(
            &args.id,
            &args.bundle,
            &spec,
            console::stdio(terminal, socket),
        )
        .with_context(|| format!("creating container {}", args.id))?;
    if let Err(e) = write_pid_file(args.pid_file.as_deref(), container.pid) {
        let _ = runtime.delete(&args.id, true);
        return Err(e);
    }
    Ok(0)
}

pub(crate) fn start(runtime: &Runtime, id: &str) -> Result<i32> {
    runtime
        .start_id(id)
        .with_context(|| format!("starting container {id}"))?;
    Ok(0)
}

/// `run`: create and start; in the foreground, waits and exits with the
/// container's exit code, then deletes it (unless `--keep`).
pub(crate) fn run(runtime: &Runtime, args: RunArgs) -> Result<i32> {
    let create = args.create;
    check_preserve_fds(create.preserve_fds)?;
    let spec = load_spec(&create.bundle)?;
    warn_unsupported(&spec);
    let terminal = is_terminal(&spec);
    let socket = console::connect_for(terminal, args.detach, create.console_socket.as_deref())?;
    let relayed = terminal && socket.is_none();
    let container = runtime
        .run(
            &create.id,
            &create.bundle,
            &spec,
            console::stdio(terminal, socket),
        )
        .with_context(|| format!("running container {}", create.id))?;
    write_pid_file(create.pid_file.as_deref(), container.pid)?;
    let relay = match &container.console {
        Some(master) if relayed => Some(console::relay(master)?),
        _ => None,
    };
    if args.detach {
        return Ok(0);
    }
    crate::signals::forward_to(container.pid);
    let code = wait_exit_code(container.pid);
    if let Some(relay) = relay {
        relay.finish();
    }
    if !args.keep {
        runtime.delete(&create.id, true)?;
    }
    code
}

pub(crate) fn state(runtime: &Runtime, id: &str) -> Result<i32> {
    let container = runtime.load(id)?;
    crate::out!("{}", serde_json::to_string_pretty(&state_json(&container))?);
    Ok(0)
}

pub(crate) fn kill(runtime: &Runtime, id: &str, signal: &str, all: bool) -> Result<i32> {
    let signal = parse_signal(signal)?;
    if all {
        runtime.kill_all(id, signal)?;
    } else {
        runtime.kill(id, signal)?;
    }
    Ok(0)
}

/// `delete`; like runc, `--force` on a container that does not exist
/// succeeds (removing a half-made state directory if one is left).
pub(crate) fn delete(runtime: &Runtime, id: &str, force: bool) -> Result<i32> {
    match runtime.delete(id, force) {
        Ok(()) => Ok(0),
        Err(RuntimeError::NotFound(_)) if force => {
            let dir = runtime.state_root().join(id);
            if !id.contains('/') && id != ".." && dir.is_dir() {
                let _ = std::fs::remove_dir_all(dir);
            }
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn list(runtime: &Runtime, format: OutputFormat, quiet: bool) -> Result<i32> {
    let containers: Vec<Container> = runtime
        .list()?
        .iter()
        .filter_map(|id| runtime.load(id).ok())
        .collect();
    if quiet {
        for c in &containers {
            crate::out!("{}", c.id);
        }
        return Ok(0);
    }
    match format {
        OutputFormat::Json => {
            let states: Vec<StateJson> = containers.iter().map(state_json).collect();
            crate::out!("{}", serde_json::to_string(&states)?);
        }
        OutputFormat::Table => {
            crate::out!(
                "{:<20} {:<8} {:<10} {:<40} {:<22} OWNER",
                "ID",
                "PID",
                "STATUS",
                "BUNDLE",
                "CREATED"
            );
            for c in &containers {
                let s = state_json(c);
                crate::out!(
                    "{:<20} {:<8} {:<10} {:<40} {:<22} root",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created
                );
            }
        }
    }
    Ok(0)
}

/// A signal by number (`9`) or name (`KILL`, `SIGKILL`, any case).
pub(crate) fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("invalid signal {s}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).with_context(|| format!("invalid signal {s}"))
}

/// Waits for our child `pid`: its exit code, or 128+signal.
pub(crate) fn wait_exit_code(pid: Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waitpid"),
        }
    }
}
