//! Building and running a VM: [`Vmm::start`] turns a [`VmConfig`] into a [`RunningVm`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vm_memory::{
    Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::regs::EntryMode;
use crate::config::{BootSource, ConfigError, CpuMode, VmConfig};
use crate::devices::i8042::{I8042, I8042_BASE, I8042_LEN};
use crate::devices::serial::{open_output, SerialDevice, COM1_BASE, COM1_IRQ, COM1_LEN};
use crate::devices::Bus;
use crate::event_loop::EventLoop;
use crate::exit::{ExitReason, VmShared};
use crate::kernel::{load_kernel, KernelEntry};
use crate::memory::{create_guest_memory, KVM_TSS_ADDRESS};
use crate::seccomp::{self, ThreadKind};
use crate::vcpu::{self, BootEntry, ExitBuses, Vcpu};
use crate::virtio::setup::attach_virtio_devices;

/// Errors starting a VM. Each variant says what failed and keeps the underlying error as its
/// [`source`](std::error::Error::source); print the chain (`{:#}` with `anyhow`) for both.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `/dev/kvm` could not be opened.
    #[error("{}", open_kvm_message(.0))]
    OpenKvm(#[source] kvm_ioctls::Error),
    /// `/dev/kvm` opened but did not answer `KVM_GET_API_VERSION`.
    #[error("/dev/kvm is not a KVM device (KVM_GET_API_VERSION failed)")]
    NotKvm(#[source] std::io::Error),
    /// KVM speaks another API version than 12.
    #[error("unsupported KVM API version {0} (expected 12)")]
    KvmApiVersion(i32),
    /// KVM lacks a capability a kernel boot needs.
    #[error("/dev/kvm is unusable: KVM lacks KVM_CAP_{0}")]
    MissingCap(&'static str),
    /// A VM-level KVM ioctl failed.
    #[error("{0} failed")]
    VmIoctl(&'static str, #[source] kvm_ioctls::Error),
    /// Guest memory could not be allocated.
    #[error("allocating guest memory")]
    AllocMemory(#[source] vm_memory::mmap::FromRangesError),
    /// Guest memory could not be written or resolved.
    #[error("guest memory: {0}")]
    Memory(&'static str, #[source] vm_memory::GuestMemoryError),
    /// Kernel loading failed.
    #[error(transparent)]
    Kernel(#[from] crate::kernel::KernelError),
    /// vCPU setup failed.
    #[error(transparent)]
    Vcpu(#[from] crate::vcpu::VcpuError),
    /// A host resource for a device (eventfd, output file, thread, ...) could not be made.
    #[error("device setup: {0}")]
    Device(&'static str, #[source] std::io::Error),
    /// Two devices claimed overlapping addresses.
    #[error("device setup")]
    Bus(#[from] crate::devices::bus::BusError),
    /// A block device could not be opened.
    #[error(transparent)]
    Block(#[from] crate::virtio::block::BlockError),
    /// A seccomp filter could not be built.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// The vsock device's host socket could not be set up.
    #[error("vsock device on {}", .0.display())]
    Vsock(PathBuf, #[source] std::io::Error),
}

fn open_kvm_message(e: &kvm_ioctls::Error) -> &'static str {
    match e.errno() {
        libc::ENOENT => {
            "/dev/kvm does not exist (KVM is not available on this host: no kvm module loaded, \
             or a VM without nested virtualisation)"
        }
        libc::EACCES | libc::EPERM => "cannot open /dev/kvm (run as root or join the kvm group)",
        _ => "cannot open /dev/kvm",
    }
}

/// Entry point of the library; see the crate docs.
pub struct Vmm;

impl Vmm {
    /// Validates `config`, builds the VM and starts its vCPUs. On error nothing is left behind.
    pub fn start(config: VmConfig) -> Result<RunningVm, StartError> {
        config.validate()?;
        let kvm = open_kvm()?;
        // The in-kernel irqchip handles HLT itself; halts are then found by the halt watch.
        let irqchip = match config.boot {
            BootSource::Kernel { .. } => true,
            BootSource::Raw { irqchip, .. } => irqchip,
        };
        if irqchip {
            for (cap, name) in [
                (Cap::Irqchip, "IRQCHIP"),
                (Cap::Irqfd, "IRQFD"),
                (Cap::Ioeventfd, "IOEVENTFD"),
                (Cap::Pit2, "PIT2"),
            ] {
                if !kvm.check_extension(cap) {
                    return Err(StartError::MissingCap(name));
                }
            }
        }
        let mem = create_guest_memory(config.memory_mib).map_err(StartError::AllocMemory)?;
        let vm = kvm
            .create_vm()
            .map_err(|e| StartError::VmIoctl("KVM_CREATE_VM", e))?;
        register_memory(&vm, &mem)?;
        vm.set_tss_address(KVM_TSS_ADDRESS as usize)
            .map_err(|e| StartError::VmIoctl("KVM_SET_TSS_ADDR", e))?;
        if irqchip {
            vm.create_irq_chip()
                .map_err(|e| StartError::VmIoctl("KVM_CREATE_IRQCHIP", e))?;
            let pit = kvm_pit_config {
                flags: KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            };
            vm.create_pit2(pit)
                .map_err(|e| StartError::VmIoctl("KVM_CREATE_PIT2", e))?;
        }

        let shared = Arc::new(
            VmShared::new(usize::from(config.vcpus), irqchip)
                .map_err(|e| StartError::Device("exit eventfd", e))?,
        );
        let irqfd = |gsi: u32| -> Result<EventFd, StartError> {
            let evt = EventFd::new(libc::EFD_NONBLOCK)
                .map_err(|e| StartError::Device("irq eventfd", e))?;
            if irqchip {
                vm.register_irqfd(&evt, gsi)
                    .map_err(|e| StartError::VmIoctl("KVM_IRQFD", e))?;
            }
            Ok(evt)
        };

        let mut pio = Bus::new();
        let out =
            open_output(&config.serial).map_err(|e| StartError::Device("serial output", e))?;
        let serial = SerialDevice::new(irqfd(COM1_IRQ)?, out);
        pio.insert(Arc::new(Mutex::new(serial)), COM1_BASE, COM1_LEN)?;
        let reset_shared = shared.clone();
        let i8042 = I8042::new(Box::new(move || {
            reset_shared.request_exit(ExitReason::Reset)
        }));
        pio.insert(Arc::new(Mutex::new(i8042)), I8042_BASE, I8042_LEN)?;

        let mut mmio = Bus::new();
        let virtio = attach_virtio_devices(&config, &vm, &mem, &mut mmio, irqchip)?;

        let entry = match &config.boot {
            BootSource::Kernel { .. } => {
                crate::arch::mptable::setup_mptable(&mem, config.vcpus)
                    .map_err(|e| StartError::Memory("writing the MP table", e))?;
                match load_kernel(&mem, &config.boot, &virtio.cmdline_entries)? {
                    KernelEntry::Pvh(rip) => BootEntry {
                        mode: EntryMode::Protected32,
                        rip,
                        kernel: true,
                    },
                    KernelEntry::Linux64(rip) => BootEntry {
                        mode: EntryMode::Long64,
                        rip,
                        kernel: true,
                    },
                }
            }
            BootSource::Raw {
                image,
                load_addr,
                mode,
                ..
            } => {
                mem.write_slice(image, GuestAddress(*load_addr))
                    .map_err(|e| StartError::Memory("writing the raw image", e))?;
                BootEntry {
                    mode: match mode {
                        CpuMode::Real => EntryMode::Real,
                        CpuMode::Long => EntryMode::Long64,
                    },
                    rip: *load_addr,
                    kernel: false,
                }
            }
        };

        let mut vcpus = Vec::with_capacity(usize::from(config.vcpus));
        for index in 0..config.vcpus {
            vcpus.push(Vcpu::new(&kvm, &vm, &mem, index, config.vcpus, entry)?);
        }

        let (vcpu_filter, device_filter) = if config.seccomp {
            (
                Some(seccomp::filter(ThreadKind::Vcpu)?),
                Some(seccomp::filter(ThreadKind::Devices)?),
            )
        } else {
            (None, None)
        };
        let event_loop = EventLoop::new(shared.clone(), virtio.devices)
            .map_err(|e| StartError::Device("event loop", e))?
            .spawn(device_filter)
            .map_err(|e| StartError::Device("event loop thread", e))?;
        let buses = ExitBuses {
            pio: Arc::new(pio),
            mmio: Arc::new(mmio),
        };
        let mut running = RunningVm {
            shared,
            vcpu_threads: Vec::new(),
            event_loop: Some(event_loop),
            mem,
            vsock_uds_path: config.vsock.as_ref().map(|v| v.uds_path.clone()),
            _vm: vm,
            _buses: buses.clone(),
            finished: None,
        };
        for vcpu in vcpus {
            match vcpu::spawn(
                vcpu,
                buses.clone(),
                running.shared.clone(),
                vcpu_filter.clone(),
            ) {
                Ok(t) => running.vcpu_threads.push(t),
                Err(e) => {
                    running.stop();
                    return Err(e.into());
                }
            }
        }
        Ok(running)
    }
}

impl TryFrom<VmConfig> for RunningVm {
    type Error = StartError;
    fn try_from(config: VmConfig) -> Result<Self, StartError> {
        Vmm::start(config)
    }
}

fn open_kvm() -> Result<Kvm, StartError> {
    let kvm = Kvm::new().map_err(StartError::OpenKvm)?;
    let version = kvm.get_api_version();
    if version < 0 {
        return Err(StartError::NotKvm(std::io::Error::last_os_error()));
    }
    if version != 12 {
        return Err(StartError::KvmApiVersion(version));
    }
    Ok(kvm)
}

fn register_memory(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), StartError> {
    for (slot, region) in mem.iter().enumerate() {
        let host_addr = mem
            .get_host_address(region.start_addr())
            .map_err(|e| StartError::Memory("host address of a RAM region", e))?;
        let region = kvm_userspace_memory_region {
            slot: slot as u32,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: host_addr as u64,
            flags: 0,
        };
        // SAFETY: the region maps memory owned by `mem`, which the returned `RunningVm` keeps
        // alive for as long as the VM fd (it drops `_vm` before `mem`: field order).
        unsafe { vm.set_user_memory_region(region) }
            .map_err(|e| StartError::VmIoctl("KVM_SET_USER_MEMORY_REGION", e))?;
    }
    Ok(())
}

/// A started VM. Dropping it stops the VM and removes its sockets.
pub struct RunningVm {
    shared: Arc<VmShared>,
    vcpu_threads: Vec<JoinHandle<()>>,
    event_loop: Option<JoinHandle<()>>,
    vsock_uds_path: Option<PathBuf>,
    finished: Option<ExitReason>,
    /// The devices, so that they are dropped (sockets closed and removed) by the owner, not
    /// by whichever VM thread ends last under its seccomp filter.
    _buses: ExitBuses,
    // Drop order: the VM fd before the memory it maps.
    _vm: VmFd,
    mem: GuestMemoryMmap,
}

impl RunningVm {
    /// The host Unix socket of the vsock device (hybrid vsock), if the VM has one.
    pub fn vsock_uds_path(&self) -> Option<&Path> {
        self.vsock_uds_path.as_deref()
    }

    /// Guest RAM (for inspection by tests and tools).
    pub fn guest_memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// An fd that becomes readable when the VM exits on its own (for callers that poll).
    pub fn exit_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.shared.exit_evt.as_raw_fd()
    }

    /// The exit reason, if the VM has stopped (without blocking).
    pub fn try_exit_reason(&self) -> Option<ExitReason> {
        self.finished.clone().or_else(|| self.shared.exit_reason())
    }

    /// Stops the VM (if still running), joins its threads and reports why it stopped.
    pub fn stop(&mut self) -> ExitReason {
        self.shared.request_exit(ExitReason::Stopped);
        self.finish()
    }

    /// Blocks until the VM stops by itself, then joins its threads.
    pub fn wait(&mut self) -> ExitReason {
        loop {
            if let Some(reason) = self.wait_timeout(Duration::from_secs(3600)) {
                return reason;
            }
        }
    }

    /// Like [`RunningVm::wait`] but gives up after `timeout` (returning `None`, VM running).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitReason> {
        if self.finished.is_none() {
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: self.exit_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is a valid pollfd for the duration of the call; nfds is 1.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n <= 0 && self.shared.exit_reason().is_none() {
                return None;
            }
        }
        Some(self.finish())
    }

    fn finish(&mut self) -> ExitReason {
        if let Some(r) = &self.finished {
            return r.clone();
        }
        if !vcpu::kick_and_join(&mut self.vcpu_threads, Duration::from_secs(5)) {
            tracing::error!("vCPU threads did not stop within 5 s");
        }
        if let Some(t) = self.event_loop.take() {
            if t.join().is_err() {
                tracing::error!("the device event loop panicked");
            }
        }
        let reason = self.shared.exit_reason().unwrap_or(ExitReason::Stopped);
        self.finished = Some(reason.clone());
        reason
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        self.stop();
    }
}
