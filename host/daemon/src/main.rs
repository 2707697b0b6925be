//! `vmrund`: the vmrun daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use vmrun_daemon::DaemonConfig;

/// The vmrun daemon: serves the Docker Engine API on a Unix socket.
#[derive(Parser, Debug)]
#[command(name = "vmrund", version)]
struct Args {
    /// API socket, as `unix:///path` or a path.
    #[arg(
        long,
        short = 'H',
        default_value = "unix:///run/vmrun/docker.sock",
        env = "VMRUN_HOST"
    )]
    host: String,
    /// Where containers, images, volumes and networks persist.
    #[arg(long, default_value = "/var/lib/vmrun", env = "VMRUN_DATA_ROOT")]
    data_root: PathBuf,
    /// Runtime state (sockets, namespaces) that does not survive a reboot.
    #[arg(long, default_value = "/run/vmrun", env = "VMRUN_EXEC_ROOT")]
    exec_root: PathBuf,
    /// Bridge device of the default network.
    #[arg(long, short = 'b', default_value = "vmrun0")]
    bridge: String,
    /// Subnet of the default network, e.g. 10.88.0.0/24 (default: a free one).
    #[arg(long)]
    bip: Option<String>,
    /// The `vmrun-shim` binary (default: next to vmrund, then PATH).
    #[arg(long)]
    shim: Option<PathBuf>,
    /// A registry reached over plain HTTP or HTTPS without certificate checks, as
    /// `host[:port]` or a CIDR (repeatable; adds to $VMRUN_INSECURE_REGISTRIES).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]|CIDR")]
    insecure_registry: Vec<String>,
    /// A Docker Hub mirror (`https://host[:port]`), tried in order before Docker Hub
    /// when pulling (repeatable).
    #[arg(long = "registry-mirror", value_name = "URL")]
    registry_mirror: Vec<String>,
    /// A directory laid out like /etc/docker/certs.d (`<host:port>/ca.crt`,
    /// `client.cert`, `client.key`); repeatable [default: /etc/vmrun/certs.d and
    /// /etc/docker/certs.d].
    #[arg(long = "certs-dir", value_name = "DIR")]
    certs_dir: Vec<PathBuf>,
    /// Which monitor boots microVMs: `vmm` (ours, needs hardware KVM), `qemu`
    /// (KVM or TCG, with vhost-device-vsock), or `auto` (ours on hardware KVM,
    /// else QEMU, else none). An explicit choice the host cannot run is an error.
    #[arg(
        long = "vm-backend",
        default_value = "auto",
        value_name = "auto|vmm|qemu"
    )]
    vm_backend: String,
    /// Where containers run unless they ask: `native` (this host's kernel) or `vm` (all
    /// in one shared Linux VM, booted on the first container that needs it, as Docker
    /// Desktop does). `--isolation vm` always gives a container a microVM of its own.
    #[arg(long, default_value = "native", value_name = "native|vm")]
    mode: String,
    /// vCPUs of the shared VM.
    #[arg(long = "vm-cpus", default_value_t = 2, value_name = "N")]
    vm_cpus: u8,
    /// Memory of the shared VM, in MiB.
    #[arg(long = "vm-memory", default_value_t = 1024, value_name = "MIB")]
    vm_memory: u32,
    /// Size of the shared VM's data disk (a sparse file), in GiB.
    #[arg(long = "vm-disk-size", default_value_t = 64, value_name = "GIB")]
    vm_disk_size: u32,
    /// Forward every TCP port a container in a VM listens on to the same port on the
    /// host's 127.0.0.1, as it appears and until it closes (per container: `run -P`).
    #[arg(long = "auto-forward")]
    auto_forward: bool,
    /// Seconds a guest agent may take to answer one call before the command fails
    /// saying the agent did not answer (a hung guest).
    #[arg(
        long = "vm-agent-timeout",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    vm_agent_timeout: u64,
    /// The `vmrun-vmm` binary (default: next to vmrund, then PATH).
    #[arg(long = "vmm", value_name = "PATH")]
    vmm: Option<PathBuf>,
    /// The guest kernel (ELF vmlinux) of containers in microVMs [default: the newest
    /// in ~/.cache/vmrun/kernel/, as kernel-config/build.sh leaves it].
    #[arg(long = "vm-kernel", value_name = "PATH", env = "VMRUN_VM_KERNEL")]
    vm_kernel: Option<PathBuf>,
    /// The agent initramfs of containers in microVMs [default: the newest in
    /// ~/.cache/vmrun/initramfs/, as installer/agent-initramfs.sh leaves it].
    #[arg(long = "vm-initrd", value_name = "PATH", env = "VMRUN_VM_INITRD")]
    vm_initrd: Option<PathBuf>,
    /// Debug logging.
    #[arg(long, short = 'D')]
    debug: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = if args.debug { "debug" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VMRUN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let socket = args
        .host
        .strip_prefix("unix://")
        .unwrap_or(&args.host)
        .to_string();
    if socket.contains("://") {
        anyhow::bail!(
            "--host must be a unix socket (unix:///path), not {}",
            args.host
        );
    }
    let mut config = DaemonConfig::with_defaults();
    config.socket = PathBuf::from(socket);
    config.data_root = args.data_root;
    config.exec_root = args.exec_root;
    config.bridge = Some(args.bridge);
    if let Some(bip) = args.bip {
        config.bridge_subnet = Some(
            bip.parse()
                .map_err(|e| anyhow::anyhow!("--bip {bip}: not an IPv4 subnet: {e}"))?,
        );
    }
    if let Some(shim) = args.shim {
        config.shim_path = shim;
    }
    config
        .apply_registry_flags(args.insecure_registry, args.registry_mirror, args.certs_dir)
        .map_err(|e| anyhow::anyhow!("registry settings: {e}"))?;
    config.vm_backend = args
        .vm_backend
        .parse()
        .map_err(|e| anyhow::anyhow!("--vm-backend: {e}"))?;
    config.vmm_binary = args.vmm;
    config.vm_kernel = args.vm_kernel;
    config.vm_initrd = args.vm_initrd;
    config.auto_forward = args.auto_forward;
    if args.vm_agent_timeout == 0 {
        anyhow::bail!("--vm-agent-timeout must be at least 1 (second)");
    }
    config.vm_agent_timeout = std::time::Duration::from_secs(args.vm_agent_timeout);
    config.mode = args
        .mode
        .parse()
        .map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
    if args.vm_cpus == 0 || args.vm_memory < 128 || args.vm_disk_size == 0 {
        anyhow::bail!("--vm-cpus must be at least 1, --vm-memory at least 128 (MiB) and --vm-disk-size at least 1 (GiB)");
    }
    config.shared_vm = vmrun_daemon::config::SharedVmSize {
        cpus: args.vm_cpus,
        memory_mib: args.vm_memory,
        disk_gib: args.vm_disk_size,
    };
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("vmrund needs root to create namespaces, cgroups and mounts");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(vmrun_daemon::run(config));
    // Blocking tasks that wait for VM monitors (`waitpid`) never end while their VMs run:
    // do not wait for them. The VMs die with this process (PR_SET_PDEATHSIG).
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}
