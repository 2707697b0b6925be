//! `containerd-shim-vmrun-v2`: containerd's shim v2 for runtime `io.containerd.vmrun.v2`.
//! Each shim runs one microVM (a pod sandbox: the tasks of one
//! `io.kubernetes.cri.sandbox-id`, or one `ctr run` task) booted from vmrun's guest kernel
//! and agent initramfs, and creates its tasks in it through the guest agent, as Kata's
//! shim does.
//!
//! The shim binary protocol (`start` prints the ttrpc address, `delete` cleans up) and the
//! the crate's helpers come from the `containerd-shim` crate, the server is [`serve`]; the
//! Task API is [`task`], the VM
//! and the guest side of a task are [`sandbox`], one process's state and stdio
//! [`process`], the task's root file system on the host [`rootfs`].

mod events;
mod process;
mod rootfs;
mod sandbox;
mod serve;
mod service;
mod task;

use containerd_shim::asynchronous::run;
use containerd_shim::Config;

/// The runtime this shim serves.
pub const RUNTIME_ID: &str = "io.containerd.vmrun.v2";

#[tokio::main]
async fn main() {
    let args: Vec<_> = std::env::args_os().collect();
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
