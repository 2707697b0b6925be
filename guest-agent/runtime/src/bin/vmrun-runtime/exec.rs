//! `exec`: a new process in a running container, from `--process` JSON (what
//! containerd's shim and conmon pass) or from the container's own process
//! with the command and flags given.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capability, Process};
use vmrun_runtime::Runtime;

use crate::cli::ExecArgs;
use crate::lifecycle::wait_exit_code;
use crate::{check_preserve_fds, console, load_spec, write_pid_file};

fn process_from_file(path: &std::path::Path) -> Result<Process> {
    let text = if path == std::path::Path::new("-") {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)?;
        text
    } else {
        std::fs::read(path).with_context(|| format!("reading process {}", path.display()))?
    };
    serde_json::from_slice(&text)
        .with_context(|| format!("malformed process JSON {}", path.display()))
}

/// The container's process with the command line's changes.
fn process_from_flags(runtime: &Runtime, args: &ExecArgs) -> Result<Process> {
    if args.command.is_empty() {
        bail!("exec needs a command or --process");
    }
    let container = runtime.load(&args.id)?;
    let spec = load_spec(&container.bundle)?;
    let mut process = spec
        .process()
        .clone()
        .context("the container's config.json has no process")?;
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if !args.env.is_empty() {
        let mut all = process.env().clone().unwrap_or_default();
        all.extend(args.env.iter().cloned());
        process.set_env(Some(all));
    }
    let mut user = process.user().clone();
    if let Some(spec) = &args.user {
        let (uid, gid) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec.as_str(), None),
        };
        user.set_uid(uid.parse().with_context(|| format!("invalid uid {uid}"))?);
        if let Some(gid) = gid {
            user.set_gid(gid.parse().with_context(|| format!("invalid gid {gid}"))?);
        }
    }
    if !args.additional_gids.is_empty() {
        user.set_additional_gids(Some(args.additional_gids.clone()));
    }
    process.set_user(user);
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if !args.caps.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        for name in &args.caps {
            let cap = parse_capability(name)?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(cap);
                Some(set)
            };
            let (b, e, p) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
            );
            caps.set_bounding(b);
            caps.set_effective(e);
            caps.set_permitted(p);
        }
        process.set_capabilities(Some(caps));
    }
    Ok(process)
}

/// A capability by name, `CAP_` prefix optional, any case.
pub(crate) fn parse_capability(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full))
        .map_err(|_| anyhow::anyhow!("unknown capability {name}"))
}

pub(crate) fn exec(runtime: &Runtime, args: ExecArgs) -> Result<i32> {
    check_preserve_fds(args.preserve_fds)?;
    let process = match &args.process {
        Some(path) => process_from_file(path)?,
        None => process_from_flags(runtime, &args)?,
    };
    let terminal = process.terminal().unwrap_or(false);
    let socket = console::connect_for(terminal, args.detach, args.console_socket.as_deref())?;
    let relayed = terminal && socket.is_none();
    let exec = runtime
        .exec(&args.id, &process, console::stdio(terminal, socket))
        .with_context(|| format!("exec in container {}", args.id))?;
    write_pid_file(args.pid_file.as_deref(), exec.pid)?;
    let relay = match &exec.console {
        Some(master) if relayed => Some(console::relay(master)?),
        _ => None,
    };
    if args.detach {
        return Ok(0);
    }
    crate::signals::forward_to(exec.pid);
    let code = wait_exit_code(exec.pid);
    if let Some(relay) = relay {
        relay.finish();
    }
    code
}
