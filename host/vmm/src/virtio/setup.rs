//! Creates the configured virtio devices, gives each an MMIO window, an IRQ (irqfd) and one
//! ioeventfd per queue, and puts its transport on the MMIO bus.

use std::sync::{Arc, Mutex};

use kvm_ioctls::{IoEventAddress, VmFd};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::block::Block;
use super::mmio::{reg, MmioTransport};
use super::vsock::VsockDevice;
use super::{IrqTrigger, VirtioDevice};
use crate::config::VmConfig;
use crate::devices::bus::lock;
use crate::devices::Bus;
use crate::event_loop::DeviceHandle;
use crate::memory::{MMIO_DEVICE_SIZE, VIRTIO_IRQ_BASE, VIRTIO_MMIO_START};
use crate::vmm::StartError;

/// The attached devices.
pub struct VirtioSetup {
    /// Handles for the event loop.
    pub devices: Vec<DeviceHandle>,
    /// `(mmio base, irq)` per device, for the kernel command line.
    pub cmdline_entries: Vec<(u64, u32)>,
}

/// Creates block devices (`vda`, `vdb`, ... in order), then the vsock device.
pub fn attach_virtio_devices(
    config: &VmConfig,
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    mmio: &mut Bus,
    irqchip: bool,
) -> Result<VirtioSetup, StartError> {
    let mut devices: Vec<Arc<Mutex<dyn VirtioDevice>>> = Vec::new();
    for (i, blk) in config.block_devices.iter().enumerate() {
        let id = format!("vmrun-vd{}", (b'a' + i as u8) as char);
        let dev = Block::new(&blk.path, blk.read_only, &id)?;
        devices.push(Arc::new(Mutex::new(dev)));
    }
    if let Some(vsock) = &config.vsock {
        let dev = VsockDevice::new(u64::from(vsock.guest_cid), &vsock.uds_path)
            .map_err(|e| StartError::Vsock(vsock.uds_path.clone(), e))?;
        devices.push(Arc::new(Mutex::new(dev)));
    }
    let mut setup = VirtioSetup {
        devices: Vec::new(),
        cmdline_entries: Vec::new(),
    };
    for (i, device) in devices.into_iter().enumerate() {
        let base = VIRTIO_MMIO_START + i as u64 * MMIO_DEVICE_SIZE;
        let irq = VIRTIO_IRQ_BASE + i as u32;
        let irq_evt =
            EventFd::new(libc::EFD_NONBLOCK).map_err(|e| StartError::Device("irq eventfd", e))?;
        if irqchip {
            vm.register_irqfd(&irq_evt, irq)
                .map_err(|e| StartError::VmIoctl("KVM_IRQFD", e))?;
        }
        let num_queues = lock(&device).queue_max_sizes().len();
        let mut queue_evts = Vec::with_capacity(num_queues);
        for q in 0..num_queues {
            let evt = EventFd::new(libc::EFD_NONBLOCK)
                .map_err(|e| StartError::Device("queue eventfd", e))?;
            vm.register_ioevent(
                &evt,
                &IoEventAddress::Mmio(base + reg::QUEUE_NOTIFY),
                q as u32,
            )
            .map_err(|e| StartError::VmIoctl("KVM_IOEVENTFD", e))?;
            queue_evts.push(evt);
        }
        let transport = MmioTransport::new(device.clone(), mem.clone(), IrqTrigger::new(irq_evt));
        mmio.insert(Arc::new(Mutex::new(transport)), base, MMIO_DEVICE_SIZE)?;
        setup.devices.push(DeviceHandle { device, queue_evts });
        setup.cmdline_entries.push((base, irq));
    }
    Ok(setup)
}
