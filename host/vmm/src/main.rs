//! `vmrun-vmm`: runs one microVM per process. The daemon launches it, connects to the vsock
//! Unix socket, and reads the exit status: 0 guest halt/poweroff, 2 guest reset, 3 VM error,
//! 143 stopped by SIGTERM/SIGINT/parent death, 1 the VM never started (one error line on
//! stderr; nothing is left behind).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use vmrun_vmm::{BlockDeviceConfig, BootSource, CpuMode, SerialOutput, VmConfig, Vmm, VsockConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RawMode {
    Real,
    Long,
}

/// Run one microVM on KVM.
#[derive(Parser, Debug)]
#[command(name = "vmrun-vmm", version)]
struct Args {
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    vcpus: u8,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 128)]
    memory_mib: u32,
    /// Kernel image: ELF vmlinux (PVH) or bzImage.
    #[arg(long, conflicts_with = "raw_image")]
    kernel: Option<PathBuf>,
    /// Initrd / initramfs.
    #[arg(long, requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Kernel command line (the VMM appends its virtio_mmio.device= entries).
    #[arg(long, default_value = "console=ttyS0 reboot=k panic=-1")]
    cmdline: String,
    /// Instead of a kernel: a raw program loaded at --raw-load-addr (tests, benchmarks).
    #[arg(long)]
    raw_image: Option<PathBuf>,
    /// CPU mode for --raw-image.
    #[arg(long, value_enum, default_value_t = RawMode::Real)]
    raw_mode: RawMode,
    /// Give --raw-image the in-kernel irqchip and PIT a kernel gets (HLT then blocks in KVM).
    #[arg(long, requires = "raw_image")]
    raw_irqchip: bool,
    /// Load/entry address for --raw-image.
    #[arg(long, default_value_t = 0x1000)]
    raw_load_addr: u64,
    /// Guest CID of the vsock device.
    #[arg(long, requires = "vsock_uds", default_value_t = 3)]
    vsock_cid: u32,
    /// Host Unix socket of the vsock device (hybrid vsock).
    #[arg(long)]
    vsock_uds: Option<PathBuf>,
    /// A raw disk image as virtio-blk: PATH or PATH,ro (repeatable, in order).
    #[arg(long = "disk")]
    disks: Vec<String>,
    /// Serial output: stdout, none, or file:PATH.
    #[arg(long, default_value = "stdout")]
    serial: String,
    /// Print start-up timings to stderr.
    #[arg(long)]
    timing: bool,
    /// Run without seccomp filters (debugging: a thread killed by SIGSYS made a syscall
    /// outside its filter).
    #[arg(long)]
    no_seccomp: bool,
}

fn parse_disk(spec: &str) -> Result<BlockDeviceConfig> {
    let (path, read_only) = match spec.rsplit_once(',') {
        Some((p, "ro")) => (p, true),
        Some((p, "rw")) => (p, false),
        _ => (spec, false),
    };
    if path.is_empty() {
        bail!("--disk: empty path");
    }
    Ok(BlockDeviceConfig {
        path: path.into(),
        read_only,
    })
}

fn parse_serial(spec: &str) -> Result<SerialOutput> {
    Ok(match spec {
        "stdout" => SerialOutput::Stdout,
        "none" => SerialOutput::Sink,
        s => match s.strip_prefix("file:") {
            Some(p) if !p.is_empty() => SerialOutput::File(p.into()),
            _ => bail!("--serial must be stdout, none or file:PATH (got {s:?})"),
        },
    })
}

fn build_config(args: &Args) -> Result<VmConfig> {
    let boot = match (&args.kernel, &args.raw_image) {
        (Some(kernel), None) => BootSource::Kernel {
            kernel: kernel.clone(),
            initrd: args.initrd.clone(),
            cmdline: args.cmdline.clone(),
        },
        (None, Some(raw)) => BootSource::Raw {
            image: std::fs::read(raw).with_context(|| format!("reading {}", raw.display()))?,
            load_addr: args.raw_load_addr,
            mode: match args.raw_mode {
                RawMode::Real => CpuMode::Real,
                RawMode::Long => CpuMode::Long,
            },
            irqchip: args.raw_irqchip,
        },
        _ => bail!("one of --kernel or --raw-image is required"),
    };
    Ok(VmConfig {
        vcpus: args.vcpus,
        memory_mib: args.memory_mib,
        boot,
        vsock: args.vsock_uds.as_ref().map(|p| VsockConfig {
            guest_cid: args.vsock_cid,
            uds_path: p.clone(),
        }),
        block_devices: args
            .disks
            .iter()
            .map(|d| parse_disk(d))
            .collect::<Result<_>>()?,
        serial: parse_serial(&args.serial)?,
        seccomp: !args.no_seccomp,
    })
}

/// Dies with the parent: SIGTERM on parent death, handled like any SIGTERM.
///
/// `parent` is the parent's pid, read first thing in `main`; if it changed by the time
/// `PR_SET_PDEATHSIG` is armed, the parent died before (we were reparented) and the signal
/// will never come. Comparing `getppid()` with 1 instead would refuse every launch by a
/// PID-1 parent (an init, or a daemon that is PID 1 of a container).
fn tie_to_parent(parent: libc::pid_t) -> Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) };
    if rc != 0 {
        bail!(
            "prctl(PR_SET_PDEATHSIG): {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        bail!("parent already exited");
    }
    Ok(())
}

/// Blocks SIGTERM/SIGINT in every thread (threads inherit the mask) and returns a signalfd
/// that reports them.
fn termination_signalfd() -> Result<OwnedFd> {
    // SAFETY: `set` is a local sigset_t initialised by sigemptyset before use; the calls only
    // read/write it and the thread's signal mask.
    let fd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            bail!("pthread_sigmask failed");
        }
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
    };
    if fd < 0 {
        bail!("signalfd: {}", std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own exclusively.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn run(args: Args, started: Instant, parent: libc::pid_t) -> Result<i32> {
    let config = build_config(&args)?;
    let sigfd = termination_signalfd()?;
    tie_to_parent(parent)?;
    let seccomp = config.seccomp;
    let mut vm = Vmm::start(config).context("starting the VM")?;
    let built = started.elapsed();
    if seccomp {
        // From here on the main thread only waits, kicks the vCPUs and tears down.
        vmrun_vmm::seccomp::install(vmrun_vmm::seccomp::ThreadKind::Main)
            .context("confining the main thread")?;
    }
    if let Some(p) = vm.vsock_uds_path() {
        tracing::info!("vsock listening on {}", p.display());
    }
    let mut fds = [
        libc::pollfd {
            fd: vm.exit_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sigfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a valid array of two pollfds for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            bail!("poll: {e}");
        }
        break;
    }
    let reason = if fds[1].revents != 0 {
        tracing::info!("termination signal: stopping the VM");
        vm.stop()
    } else {
        vm.wait()
    };
    if args.timing {
        eprintln!(
            "vmrun-vmm timing: vm_built_us={} exited_us={}",
            built.as_micros(),
            started.elapsed().as_micros()
        );
    }
    match &reason {
        vmrun_vmm::ExitReason::Error(e) => eprintln!("vmrun-vmm: VM error: {e}"),
        other => tracing::info!("VM stopped: {other:?}"),
    }
    Ok(reason.exit_code())
}

/// The log level from `VMRUN_VMM_LOG` (`error`, `warn`, `info`, `debug`, `trace`, `off`);
/// `warn` when unset or not a level. A plain level rather than an `EnvFilter`: the filter's
/// regex engine would be most of the binary.
fn log_level() -> tracing_subscriber::filter::LevelFilter {
    std::env::var("VMRUN_VMM_LOG")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::WARN)
}

/// The error and its causes on one line, `: `-separated. A cause whose text the line already
/// ends with is skipped: some errors (linux-loader's) repeat their source in their message.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn main() {
    let started = Instant::now();
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    tracing_subscriber::fmt()
        .with_max_level(log_level())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args, started, parent) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("vmrun-vmm: {}", error_line(&e));
            std::process::exit(1);
        }
    }
}
