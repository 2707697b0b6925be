//! `vmrun-agent`: the guest's PID 1 (no arguments needed), or, with `--listen unix:PATH`,
//! the same agent on a host for tests. See the library docs.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use vmrun_agent::{Config, Listen, DEFAULT_STATE_DIR, GUEST_SHIM_PATH};

/// The vmrun guest agent.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// `vsock:PORT` (the guest) or `unix:PATH` (tests on a host).
    #[arg(long, default_value_t = format!("vsock:{}", vmrun_agent_protocol::AGENT_PORT))]
    listen: String,
    /// State directory.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// The vmrun-shim binary [default: /bin/vmrun-shim, else next to this binary].
    #[arg(long)]
    shim: Option<PathBuf>,
    /// Listen on vsock although this is not PID 1 (only inside a guest: on a host, AF_VSOCK
    /// reaches the hypervisor's side, never ours).
    #[arg(long)]
    allow_vsock: bool,
}

fn main() {
    let pid1 = std::process::id() == 1;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VMRUN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    // As PID 1 the kernel passes leftover command-line words as arguments: ignore them.
    let args = if pid1 {
        Args::parse_from(["vmrun-agent"])
    } else {
        Args::parse()
    };
    if let Err(e) = real_main(args, pid1) {
        eprintln!("vmrun-agent: {e:#}");
        if pid1 {
            // Returning from PID 1 panics the kernel; end the VM cleanly instead.
            let e = vmrun_agent::power::shutdown(vmrun_agent_protocol::ShutdownAction::Reboot);
            eprintln!("vmrun-agent: reboot failed: {e}");
        }
        std::process::exit(1);
    }
}

fn real_main(args: Args, pid1: bool) -> anyhow::Result<()> {
    let listen: Listen = args
        .listen
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))
        .context("--listen")?;
    if !pid1 && matches!(listen, Listen::Vsock(_)) && !args.allow_vsock {
        anyhow::bail!(
            "not PID 1: refusing to listen on vsock outside a guest; use --listen unix:PATH \
             (or --allow-vsock inside a guest)"
        );
    }
    let shim = args.shim.unwrap_or_else(default_shim);
    vmrun_agent::run(Config {
        listen,
        state_dir: args.state_dir,
        shim,
        init: pid1,
    })
    .context("running the agent")
}

fn default_shim() -> PathBuf {
    let guest = PathBuf::from(GUEST_SHIM_PATH);
    if guest.is_file() {
        return guest;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("vmrun-shim")))
        .unwrap_or(guest)
}
