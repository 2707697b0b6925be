//! The vmrun microVM monitor on KVM.
//!
//! A small VMM in the shape of Firecracker and rust-vmm's `vmm-reference`, built from the
//! rust-vmm crates: `kvm-ioctls` for the VM and vCPUs, `vm-memory` for guest RAM,
//! `linux-loader` for the kernel (PVH ELF or bzImage), `vm-superio` for the serial port,
//! `virtio-queue` for the virtio devices, one epoll loop (`vmm-sys-util`) for device I/O.
//!
//! # Using it (the `VmBackend` surface)
//!
//! ```no_run
//! use vmrun_vmm::{BootSource, SerialOutput, VmConfig, VsockConfig, Vmm};
//! let config = VmConfig {
//!     vcpus: 2,
//!     memory_mib: 256,
//!     boot: BootSource::Kernel {
//!         kernel: "/var/lib/vmrun/vmlinux".into(),
//!         initrd: Some("/var/lib/vmrun/initrd.gz".into()),
//!         cmdline: "console=ttyS0 reboot=k panic=-1".into(),
//!     },
//!     vsock: Some(VsockConfig { guest_cid: 3, uds_path: "/run/vmrun/vm1.vsock".into() }),
//!     block_devices: vec![],
//!     serial: SerialOutput::Stdout,
//!     seccomp: true,
//! };
//! let mut vm = Vmm::start(config)?;          // validated, built, vCPUs running
//! let sock = vm.vsock_uds_path().unwrap();   // connect, write "CONNECT <port>\n", read "OK <n>\n"
//! # let _ = sock;
//! let why = vm.stop();                       // or vm.wait() for the guest to stop by itself
//! println!("VM stopped: {why:?} (exit status {})", why.exit_code());
//! # Ok::<(), vmrun_vmm::StartError>(())
//! ```
//!
//! A daemon runs one `vmrun-vmm` process per VM (see `vmrun-vmm --help`): it takes the same
//! fields as flags, exits with [`ExitReason::exit_code`] (1 if the VM never started, with one
//! error line on stderr), stops cleanly on SIGTERM/SIGINT, and dies with its parent
//! (`PR_SET_PDEATHSIG`).
//!
//! # Devices
//! - COM1 16550 serial (`vm-superio`), i8042 (reset ends the VM with [`ExitReason::Reset`]).
//! - virtio-mmio transports in the 32-bit MMIO gap at `0xd000_0000`, IRQs from 5, announced on
//!   the kernel command line as `virtio_mmio.device=4K@<addr>:<irq>`; queue notifications via
//!   ioeventfd, interrupts via irqfd.
//! - virtio-blk ([`virtio::block`]) over raw images; virtio-vsock ([`virtio::vsock`]) whose
//!   host side is Firecracker's hybrid vsock: a Unix socket taking `CONNECT <port>\n`, and
//!   `<path>_<port>` sockets for guest-initiated connections.
//!
//! # seccomp
//! Each VM thread installs its own seccomp filter ([`seccomp`]) before it handles guest
//! input: vCPU threads (`KVM_RUN` and device I/O), the device thread (epoll, sockets, block
//! I/O), and the binary's main thread. Anything else kills the process with SIGSYS;
//! [`VmConfig::seccomp`] = false (`vmrun-vmm --no-seccomp`) turns them off for debugging.
//!
//! # Halt and poweroff
//! A guest that powers off or halts ends the VM with [`ExitReason::Halted`] or
//! [`ExitReason::PowerOff`] (exit status 0); a reset (i8042 `0xfe`, triple fault) with
//! [`ExitReason::Reset`]. A Linux kernel without ACPI turns `poweroff` into `halt`: every CPU
//! ends in `cli; hlt`, which the in-kernel irqchip handles without telling userspace. The
//! [`halt`] watch kicks each vCPU out of `KVM_RUN` every 500 ms and ends the VM once every vCPU
//! was halted with interrupts disabled and no NMI pending (`KVM_GET_MP_STATE`, `KVM_GET_REGS`,
//! `KVM_GET_VCPU_EVENTS`) in two rounds running: 1 to 1.5 s after the last CPU halts.
//!
//! # Raw guests
//! [`BootSource::Raw`] runs a small program in real or long mode, by default without an
//! in-kernel irqchip (so `HLT` exits); tests and benchmarks use it. The vCPU index is in `rdi`
//! at entry. With `irqchip: true` (`vmrun-vmm --raw-irqchip`) it gets the irqchip and PIT of a
//! kernel boot: `HLT` blocks in KVM, vCPUs other than 0 wait for INIT/SIPI, and halts are
//! found by the [`halt`] watch.

pub mod arch;
pub mod config;
pub mod devices;
pub mod event_loop;
mod exit;
pub mod halt;
pub mod kernel;
pub mod memory;
pub mod pvm;
pub mod seccomp;
pub mod vcpu;
pub mod virtio;
mod vmm;

pub use config::{
    BlockDeviceConfig, BootSource, ConfigError, CpuMode, SerialOutput, VmConfig, VsockConfig,
};
pub use exit::ExitReason;
pub use vmm::{RunningVm, StartError, Vmm};
