//! `containerd-shim-vmrun-v2`: containerd's shim v2 for runtime `io.containerd.vmrun.v2`.
//! Each shim runs one microVM (a pod sandbox: the tasks of one
//! `io.kubernetes.cri.sandbox-id`, or one `ctr run` task) booted from vmrun's guest kernel
//! and agent initramfs, and creates its tasks in it through the guest agent, as Kata's
//! shim does. Asked for no VM (runtime `io.containerd.vmrun-native.v2`, or the annotation
//! `io.vmrun.isolation=none`: [`isolation`]) it runs the same agent on the host instead
//! ([`host_agent`]: this binary re-executed), and the tasks are native containers.
//!
//! The shim binary protocol (`start` prints the ttrpc address, `delete` cleans up) and
//! the crate's helpers come from the `containerd-shim` crate, the server is [`serve`]; the
//! Task API is [`task`], the tasks and their sandbox [`tasks`] (a VM or the host agent:
//! [`runner`]), exits and OOM kills [`exits`], metrics and limits [`metrics`], the VM
//! and the guest side of a task [`sandbox`], one process's state and stdio
//! [`process`], the task's root file system on the host [`rootfs`], the host files and
//! directories its spec binds, shared into the VM, [`mounts`], a pod's network (its
//! `passt` in the CNI namespace) [`netns`].

mod events;
mod exits;
mod host_agent;
mod isolation;
mod metrics;
mod mounts;
mod netns;
mod process;
mod rootfs;
mod runner;
mod sandbox;
mod serve;
mod service;
mod task;
mod tasks;

use containerd_shim::asynchronous::run;
use containerd_shim::Config;

/// The runtime this shim serves.
pub const RUNTIME_ID: &str = "io.containerd.vmrun.v2";

fn main() {
    let args: Vec<_> = std::env::args_os().collect();
    // The native sandbox's agent: this binary re-executed (it runs its own runtime).
    if args.get(1).is_some_and(|a| a == host_agent::AGENT_ARG) {
        if let Err(e) = host_agent::run_agent(args.get(2..).unwrap_or_default()) {
            eprintln!("{RUNTIME_ID} agent: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{RUNTIME_ID}: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(shim_main(args));
}

async fn shim_main(args: Vec<std::ffi::OsString>) {
    if let Ok(flags) = containerd_shim::parse(args.get(1..).unwrap_or_default()) {
        if flags.action.is_empty() && !flags.info && !flags.version {
            if let Err(e) = serve::serve(flags).await {
                eprintln!("{RUNTIME_ID}: {e:#}");
                std::process::exit(1);
            }
            return;
        }
    }
    let config = Config {
        // The VM monitor and its vsock helper are children this process waits for
        // itself (`vmrun_vm`); a reaper would steal their exits.
        no_reaper: true,
        no_sub_reaper: true,
        ..Default::default()
    };
    run::<service::VmShim>(RUNTIME_ID, Some(config)).await;
}
