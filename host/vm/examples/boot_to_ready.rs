//! Boot-to-ready benchmark (issue 4; target <= 80 ms on hardware KVM, Firecracker <= 125 ms to
//! init). Not a test: prints numbers.
//!
//! Each run launches the `kernel-config/` kernel with the echo initramfs of `tests/vmtest`
//! through the chosen [`VmBackend`] and times from just before `launch` to the first completed
//! round trip over hybrid vsock (once the init's "listening" line is on the serial console:
//! connect to the guest's port, write bytes, read them back);
//! then stops the VM and waits for it. Each run's time goes to stderr, the summary to stdout:
//! `median X ms, p90 Y ms, min Z ms over N runs (backend B, kvm|tcg)`.
//!
//! A backend that cannot run here, or a missing kernel/initramfs, prints `skipping: <reason>`
//! and exits 0.
//!
//! ```text
//! cargo build --release -p vmrun-vmm
//! cargo run --release -p vmrun-vm --example boot_to_ready -- --backend vmm --runs 20
//! ```

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use vmrun_vm::{select_backend, BackendChoice, HostCaps, KvmStatus, VmBackend, VmExit, VmSpec};
use vmrun_vmtest::ECHO_PORT;

/// What the host writes to the echo init and expects back.
const PROBE: &[u8] = b"vmrun boot-to-ready probe";
/// What the echo init prints on the console once it listens.
const READY_LINE: &[u8] = b"listening on vsock port";
/// How long `stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    /// Our monitor, `vmrun-vmm` (hardware KVM only).
    Vmm,
    /// QEMU `microvm` + vhost-device-vsock (KVM, or TCG without hardware KVM).
    Qemu,
}

/// Time from launching a microVM to the first vsock round trip with its guest.
#[derive(Parser, Debug)]
#[command(name = "boot_to_ready")]
struct Args {
    /// Which VM backend to measure.
    #[arg(long, value_enum, default_value_t = BackendArg::Vmm)]
    backend: BackendArg,
    /// Number of boots.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256)]
    memory_mib: u32,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    vcpus: u8,
    /// The `vmrun-vmm` binary (default: the one cargo built into this target directory).
    #[arg(long)]
    vmm_binary: Option<PathBuf>,
    /// Give up on one boot after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Also print how each VM stopped and where its launch time went.
    #[arg(short, long)]
    verbose: bool,
    /// Boot this initramfs (an echo init) instead of building one with gcc (used where no
    /// compiler is, as inside the nested KVM host).
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// Only write the echo initramfs to this path and exit (for `--initrd` elsewhere).
    #[arg(long)]
    write_initrd: Option<PathBuf>,
}

/// One boot's timings, and how its VM ended.
struct Boot {
    /// Until `launch` returned (the monitor is up and its vsock socket exists).
    launched: Duration,
    /// Until the first round trip completed: the figure the benchmark reports.
    ready: Duration,
    /// Why the VM stopped (normally stopped by us; the echo init also reboots by itself).
    ended: VmExit,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boot_to_ready: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    if let Some(out) = &args.write_initrd {
        let dir = tempfile::tempdir().context("creating a work directory")?;
        let built = vmrun_vmtest::echo_initramfs(dir.path())
            .map_err(|skip| anyhow::anyhow!("the echo initramfs: {skip}"))?;
        std::fs::copy(&built, out).with_context(|| format!("writing {}", out.display()))?;
        return Ok(());
    }
    let caps = HostCaps::detect(Some(
        args.vmm_binary.clone().unwrap_or_else(default_vmm_binary),
    ));
    let choice = match args.backend {
        BackendArg::Vmm => BackendChoice::Vmm,
        BackendArg::Qemu => BackendChoice::Qemu,
    };
    let backend = match select_backend(choice, &caps) {
        Ok(b) => b,
        Err(why) => {
            println!("skipping: {why}");
            return Ok(());
        }
    };
    // Our VMM runs only on hardware KVM; QEMU uses KVM there and TCG elsewhere.
    let accel = if caps.kvm == KvmStatus::Hardware {
        "kvm"
    } else {
        "tcg"
    };

    let kernel = match vmrun_vmtest::guest_kernel() {
        Ok(k) => k,
        Err(skip) => {
            println!("skipping: {}", with_build_hint(&skip.0));
            return Ok(());
        }
    };
    // Short path: the vsock socket (plus "_<port>") must fit in sun_path.
    let dir = tempfile::Builder::new()
        .prefix("bootbench")
        .tempdir_in("/tmp")
        .context("creating a work directory under /tmp")?;
    let initrd = match &args.initrd {
        Some(given) => given.clone(),
        None => match vmrun_vmtest::echo_initramfs(dir.path()) {
            Ok(i) => i,
            Err(skip) => {
                println!("skipping: the echo initramfs: {skip}");
                return Ok(());
            }
        },
    };

    let mut ready_ms = Vec::with_capacity(args.runs as usize);
    for run in 1..=args.runs {
        let mut spec = VmSpec::new(&kernel, dir.path().join(format!("run{run}.sock")));
        spec.vcpus = args.vcpus;
        spec.memory_mib = args.memory_mib;
        spec.initrd = Some(initrd.clone());
        spec.serial_log = Some(dir.path().join(format!("run{run}.serial")));
        let boot = match boot_once(backend.as_ref(), &spec, args) {
            Ok(boot) => boot,
            Err(e) => {
                if let Some(tail) = serial_tail(&spec) {
                    eprintln!("{tail}");
                }
                return Err(e.context(format!("run {run}")));
            }
        };
        let ms = as_ms(boot.ready);
        eprintln!("run {run}: {ms:.1} ms");
        if args.verbose {
            eprintln!(
                "  launch returned after {:.1} ms; the VM ended: {}",
                as_ms(boot.launched),
                boot.ended
            );
        }
        ready_ms.push(ms);
    }

    ready_ms.sort_by(f64::total_cmp);
    println!(
        "median {:.1} ms, p90 {:.1} ms, min {:.1} ms over {} runs (backend {}, {accel})",
        median(&ready_ms),
        nearest_rank(&ready_ms, 0.9),
        ready_ms[0],
        ready_ms.len(),
        backend.name(),
    );
    Ok(())
}

/// Launch, round trip, stop; the VM is gone when this returns.
fn boot_once(backend: &dyn VmBackend, spec: &VmSpec, args: &Args) -> Result<Boot> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let started = Instant::now();
    let vm = backend.launch(spec).context("launching the VM")?;
    let launched = started.elapsed();
    // A CONNECT sent while the guest's vsock driver comes up can go unanswered for good
    // under QEMU's vhost-device-vsock (seen in the nested host): for both backends alike,
    // connect once the init says on the console that it listens (polled every 2 ms).
    if let Some(serial) = &spec.serial_log {
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read(serial).unwrap_or_default();
            if text.windows(READY_LINE.len()).any(|w| w == READY_LINE) {
                break;
            }
            if Instant::now() > deadline {
                bail!("the guest did not say it listens within {timeout:?}");
            }
            if let Some(exit) = vm.try_wait().context("checking the VM")? {
                bail!("the VM ended while booting: {exit}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let mut stream = vm
        .connect(ECHO_PORT, timeout)
        .with_context(|| format!("connecting to guest vsock port {ECHO_PORT}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .context("setting a read timeout on the vsock stream")?;
    stream
        .write_all(PROBE)
        .context("writing to the echo init")?;
    let mut echo = [0u8; PROBE.len()];
    stream
        .read_exact(&mut echo)
        .context("reading the echo back")?;
    let ready = started.elapsed();
    if echo != PROBE {
        bail!(
            "the guest echoed {:?}, not {:?}",
            String::from_utf8_lossy(&echo),
            String::from_utf8_lossy(PROBE)
        );
    }
    drop(stream);
    // The echo init reboots by itself soon after; stop it now either way.
    let ended = vm.stop(STOP_GRACE).context("stopping the VM")?;
    Ok(Boot {
        launched,
        ready,
        ended,
    })
}

/// Where cargo puts `vmrun-vmm` for this example: `target/<profile>/examples/boot_to_ready`
/// → `target/<profile>/vmrun-vmm`. `HostCaps::detect` falls back to PATH when it is absent.
fn default_vmm_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|d| d.join("vmrun-vmm")))
        .unwrap_or_else(|| PathBuf::from("vmrun-vmm"))
}

fn with_build_hint(reason: &str) -> String {
    if reason.contains("kernel-config/build.sh") {
        reason.to_owned()
    } else {
        format!("{reason} (build the guest kernel with kernel-config/build.sh)")
    }
}

/// The end of the guest's serial log, printed when a run fails; `None` when the VM never wrote
/// one (it did not start).
fn serial_tail(spec: &VmSpec) -> Option<String> {
    let text = std::fs::read_to_string(spec.serial_log.as_deref()?).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    Some(if tail.is_empty() {
        "the guest printed nothing on its serial console".into()
    } else {
        format!("the guest's serial console, last lines:\n{tail}")
    })
}

fn as_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median of sorted, non-empty `values`.
fn median(values: &[f64]) -> f64 {
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The `q` quantile of sorted, non-empty `values` by the nearest-rank method.
fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}
