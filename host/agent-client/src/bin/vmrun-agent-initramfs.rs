//! `vmrun-agent-initramfs --agent PATH --shim PATH`: builds (or finds in the cache) the guest
//! initramfs from the static agent and shim, and prints its path.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Build the vmrun guest initramfs.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// The static `vmrun-agent` binary (becomes /init).
    #[arg(long)]
    agent: PathBuf,
    /// The static `vmrun-shim` binary (becomes /bin/vmrun-shim).
    #[arg(long)]
    shim: PathBuf,
    /// Cache root [default: $XDG_CACHE_HOME/vmrun or ~/.cache/vmrun].
    #[arg(long)]
    cache: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let path = vmrun_agent_client::initramfs::build(&args.agent, &args.shim, args.cache.as_deref())
        .context("building the agent initramfs")?;
    println!("{}", path.display());
    Ok(())
}
