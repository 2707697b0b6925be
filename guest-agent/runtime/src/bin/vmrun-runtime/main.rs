//! `vmrun-runtime`: a runc-compatible OCI runtime CLI over the
//! `vmrun-runtime` library, meant to be driven unchanged by containerd's runc
//! shim (`io.containerd.runc.v2` with `BinaryName`) and by podman
//! (`--runtime`), through conmon.
//!
//! The command line follows runc 1.1: the same global options (`--root`,
//! `--log`, `--log-format`, `--debug`, `--systemd-cgroup`), commands and
//! flags, the OCI state JSON, `--console-socket` for terminals, `--pid-file`,
//! and runc's exit codes: 0 on success, 1 on any error (usage errors
//! included), and for `run` and a foreground `exec` the process's own exit
//! code (128+N when killed by signal N). Errors go to stderr and, with
//! `--log`, to the log file (`--log-format json` writes the
//! `{"level":"error","msg":...}` lines containerd's shim reads back).
//!
//! One file per concern: `cli.rs` (the clap definitions), `lifecycle.rs`
//! (create, start, run, state, kill, delete, list), `exec.rs`, `cgroups.rs`
//! (ps, events, pause, resume, update), `info.rs` (features, spec),
//! `console.rs` (console socket and the foreground relay), `signals.rs`
//! (forwarding in the foreground), `log.rs`.

/// `println!` that ends quietly when stdout is closed (`... | head`)
/// instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = writeln!(stdout, $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod cgroups;
mod cli;
mod console;
mod exec;
mod info;
mod lifecycle;
mod log;
mod signals;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use vmrun_runtime::Runtime;

use cli::{Cli, Command};

/// runc's exit status for every failure.
const EXIT_ERROR: i32 = 1;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                // runc answers an unknown command with "No help topic", status 3.
                ErrorKind::InvalidSubcommand => 3,
                // runc (urfave/cli) exits 1 on usage errors too.
                _ => EXIT_ERROR,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let logger = log::init(&cli);
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let message = format!("{e:#}");
            logger.error(&message);
            eprintln!("vmrun-runtime: {message}");
            std::process::exit(EXIT_ERROR);
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    if cli.version {
        crate::out!(
            "vmrun-runtime version {}\ncommit: unknown\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            vmrun_runtime::OCI_VERSION
        );
        return Ok(0);
    }
    if cli.systemd_cgroup {
        bail!(
            "--systemd-cgroup is not supported: vmrun-runtime manages cgroups through cgroupfs \
             only (configure the caller for cgroupfs: containerd `SystemdCgroup = false`, \
             podman `--cgroup-manager cgroupfs`)"
        );
    }
    if cli.rootless.as_deref().is_some_and(|r| r == "true") {
        bail!("--rootless true is not supported: vmrun-runtime needs root");
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        return Ok(0);
    };
    let runtime = Runtime::new(&cli.root);
    match command {
        Command::Create(args) => lifecycle::create(&runtime, args),
        Command::Start { id } => lifecycle::start(&runtime, &id),
        Command::Run(args) => lifecycle::run(&runtime, args),
        Command::State { id } => lifecycle::state(&runtime, &id),
        Command::Kill { all, id, signal } => lifecycle::kill(&runtime, &id, &signal, all),
        Command::Delete { force, id } => lifecycle::delete(&runtime, &id, force),
        Command::List { format, quiet } => lifecycle::list(&runtime, format, quiet),
        Command::Exec(args) => exec::exec(&runtime, *args),
        Command::Ps {
            format,
            id,
            ps_args,
        } => cgroups::ps(&runtime, &id, format, &ps_args),
        Command::Events {
            stats,
            interval,
            id,
        } => cgroups::events(&runtime, &id, stats, &interval),
        Command::Pause { id } => cgroups::pause(&runtime, &id),
        Command::Resume { id } => cgroups::resume(&runtime, &id),
        Command::Update { resources, id } => cgroups::update(&runtime, &id, &resources),
        Command::Features => info::features(),
        Command::Spec { bundle, rootless } => info::spec(&bundle, rootless),
    }
}

/// Loads `<bundle>/config.json`, with runc-like messages for a missing
/// bundle or a malformed file.
pub(crate) fn load_spec(bundle: &Path) -> Result<Spec> {
    if !bundle.is_dir() {
        bail!("bundle {}: no such directory", bundle.display());
    }
    let path = bundle.join("config.json");
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("JSON specification file {} not found", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_slice(&text)
        .with_context(|| format!("malformed OCI specification {}", path.display()))
}

/// Writes the pid like runc: the number alone, through a temporary file
/// renamed into place, so a reader never sees a partial file.
pub(crate) fn write_pid_file(path: Option<&Path>, pid: Pid) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut tmp: PathBuf = path.clone();
    tmp.set_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pid".into())
    ));
    std::fs::write(&tmp, pid.to_string()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// Refuses `--preserve-fds N` with N > 0 (not implemented: the container's
/// init closes every fd above stdio).
pub(crate) fn check_preserve_fds(n: u32) -> Result<()> {
    if n > 0 {
        bail!("--preserve-fds {n} is not supported by vmrun-runtime");
    }
    Ok(())
}
