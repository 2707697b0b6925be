//! virtio devices over the virtio-mmio transport (version 2).

pub mod block;
pub mod iov;
pub mod mmio;
pub mod setup;
#[cfg(test)]
pub mod testing;
pub mod vsock;

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// `VIRTIO_F_VERSION_1`: required by the virtio-mmio v2 transport.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Interrupt status bit: a used buffer was added.
pub const VIRTIO_MMIO_INT_VRING: u32 = 0x01;
/// Interrupt status bit: the configuration changed.
pub const VIRTIO_MMIO_INT_CONFIG: u32 = 0x02;

/// Device type IDs.
pub mod device_type {
    /// virtio-blk.
    pub const BLOCK: u32 = 2;
    /// virtio-vsock.
    pub const VSOCK: u32 = 19;
}

/// Raises a device's interrupt: sets the MMIO interrupt status bit, then signals the
/// eventfd (an irqfd wired to the device's GSI when the VM has an in-kernel irqchip).
#[derive(Clone)]
pub struct IrqTrigger {
    status: Arc<AtomicU32>,
    evt: Arc<EventFd>,
}

impl IrqTrigger {
    /// A trigger signalling `evt`.
    pub fn new(evt: EventFd) -> Self {
        Self {
            status: Arc::new(AtomicU32::new(0)),
            evt: Arc::new(evt),
        }
    }

    /// Signals "used buffers added".
    pub fn trigger_vring(&self) {
        self.trigger(VIRTIO_MMIO_INT_VRING);
    }

    /// Signals "configuration changed".
    pub fn trigger_config(&self) {
        self.trigger(VIRTIO_MMIO_INT_CONFIG);
    }

    fn trigger(&self, bit: u32) {
        self.status.fetch_or(bit, Ordering::SeqCst);
        if let Err(e) = self.evt.write(1) {
            tracing::warn!("raising virtio interrupt: {e}");
        }
    }

    /// Current interrupt status bits.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// Clears acknowledged bits.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// The underlying eventfd (tests read it to see interrupts).
    pub fn eventfd(&self) -> &EventFd {
        &self.evt
    }
}

/// Errors activating a device.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The driver set up the wrong number of queues or invalid ones.
    #[error("invalid queues: {0}")]
    BadQueues(String),
    /// The device backend failed.
    #[error("backend: {0}")]
    Backend(String),
}

/// A virtio device behind an MMIO transport. The transport calls it from vCPU threads, the
/// event loop from its own thread; both through one mutex.
pub trait VirtioDevice: Send {
    /// virtio device type ID.
    fn device_type(&self) -> u32;
    /// Maximum size of each queue (its length is the number of queues).
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits offered.
    fn avail_features(&self) -> u64;
    /// Feature bits the driver accepted.
    fn set_acked_features(&mut self, acked: u64);
    /// Reads device config space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes device config space (ignored by default).
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// Starts the device with the driver's queues.
    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        irq: IrqTrigger,
    ) -> Result<(), ActivateError>;
    /// Driver reset: drop queues and connections, back to the pre-activation state.
    fn reset(&mut self) {}
    /// A queue was notified (ioeventfd or trapped `QueueNotify`).
    fn process_queue(&mut self, index: usize);
    /// An fd the event loop polls for backend work (e.g. the vsock muxer's epoll fd).
    fn backend_fd(&self) -> Option<RawFd> {
        None
    }
    /// The backend fd is readable.
    fn process_backend(&mut self) {}
}
