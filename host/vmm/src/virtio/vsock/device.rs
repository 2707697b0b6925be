//! The virtio-vsock device: RX (0), TX (1) and event (2) queues, moving packets between the
//! guest and the [`Muxer`].

use std::os::fd::RawFd;
use std::path::Path;

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;

use super::muxer::Muxer;
use super::packet::{VsockHeader, HDR_SIZE, MAX_PKT_DATA};
use crate::virtio::iov::{Direction, GuestIov};
use crate::virtio::{device_type, ActivateError, IrqTrigger, VirtioDevice, VIRTIO_F_VERSION_1};

const RX: usize = 0;
const TX: usize = 1;
const QUEUE_SIZES: [u16; 3] = [256, 256, 256];

struct Active {
    mem: GuestMemoryMmap,
    queues: Vec<Queue>,
    irq: IrqTrigger,
}

/// A virtio-vsock device with a hybrid (Unix socket) host side.
pub struct VsockDevice {
    guest_cid: u64,
    muxer: Muxer,
    acked_features: u64,
    active: Option<Active>,
}

impl VsockDevice {
    /// Binds the host socket at `uds_path` for a guest with CID `guest_cid`.
    pub fn new(guest_cid: u64, uds_path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            guest_cid,
            muxer: Muxer::new(guest_cid, uds_path)?,
            acked_features: 0,
            active: None,
        })
    }

    /// The muxer (tests inspect it).
    pub fn muxer(&self) -> &Muxer {
        &self.muxer
    }

    /// Sets how long host-initiated connection set-up may take (see
    /// [`Muxer::set_connect_timeout`]).
    pub fn set_connect_timeout(&mut self, timeout: std::time::Duration) {
        self.muxer.set_connect_timeout(timeout);
    }

    /// Guest → host. The payload goes from guest memory to the host stream without a copy
    /// (see [`Muxer::handle_guest_packet`]).
    fn process_tx(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = &active.mem;
        let mut used = false;
        while let Some(chain) = active.queues[TX].pop_descriptor_chain(mem) {
            let head = chain.head_index();
            match GuestIov::from_chain(mem, chain, Direction::Readable) {
                Ok(mut iov) => {
                    let mut hdr = [0u8; HDR_SIZE];
                    match iov.read_exact(&mut hdr).then(|| VsockHeader::parse(&hdr)) {
                        Some(Ok(hdr)) if iov.len() >= hdr.len as usize => {
                            iov.truncate(hdr.len as usize);
                            self.muxer.handle_guest_packet(hdr, &mut iov);
                        }
                        Some(Ok(_)) => tracing::debug!("vsock: TX payload shorter than len"),
                        Some(Err(e)) => tracing::debug!("vsock: bad TX header: {e:?}"),
                        None => tracing::debug!("vsock: TX chain shorter than a header"),
                    }
                }
                Err(e) => tracing::debug!("vsock: bad TX chain: {e}"),
            }
            // The guest gets the buffers back only now: whatever the stream did not take is
            // in the connection's buffer by then.
            if let Err(e) = active.queues[TX].add_used(mem, head, 0) {
                tracing::warn!("vsock: TX add_used: {e}");
            }
            used = true;
        }
        if used && active.queues[TX].needs_notification(mem).unwrap_or(true) {
            active.irq.trigger_vring();
        }
    }

    /// Host → guest. A RW payload is read from the host stream straight into the guest's
    /// buffer, after the header's place.
    fn process_rx(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = &active.mem;
        let queue = &mut active.queues[RX];
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let mut iov = match GuestIov::from_chain(mem, chain, Direction::Writable) {
                Ok(iov) if iov.len() >= HDR_SIZE => iov,
                _ => {
                    let _ = queue.add_used(mem, head, 0);
                    used = true;
                    continue;
                }
            };
            let mut payload = iov.clone();
            payload.advance(HDR_SIZE);
            payload.truncate(MAX_PKT_DATA as usize);
            let Some(hdr) = self.muxer.next_rx_packet(&mut payload) else {
                queue.go_to_previous_position();
                break;
            };
            let written = if iov.write_all(&hdr.to_bytes()) {
                HDR_SIZE as u32 + hdr.len
            } else {
                0
            };
            if let Err(e) = queue.add_used(mem, head, written) {
                tracing::warn!("vsock: RX add_used: {e}");
            }
            used = true;
        }
        if used && queue.needs_notification(mem).unwrap_or(true) {
            active.irq.trigger_vring();
        }
    }
}

impl VirtioDevice for VsockDevice {
    fn device_type(&self) -> u32 {
        device_type::VSOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn avail_features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }

    fn set_acked_features(&mut self, acked: u64) {
        self.acked_features = acked;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // Config space: guest_cid (u64).
        let config = self.guest_cid.to_le_bytes();
        data.fill(0);
        if let Some(src) = config.get(offset as usize..) {
            let n = src.len().min(data.len());
            data[..n].copy_from_slice(&src[..n]);
        }
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        irq: IrqTrigger,
    ) -> Result<(), ActivateError> {
        if queues.len() != QUEUE_SIZES.len() || !queues.iter().all(|q| q.is_valid(&mem)) {
            return Err(ActivateError::BadQueues(
                "virtio-vsock needs 3 valid queues".into(),
            ));
        }
        self.active = Some(Active { mem, queues, irq });
        self.process_rx();
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
        self.muxer.reset();
    }

    fn process_queue(&mut self, index: usize) {
        if index == TX {
            self.process_tx();
        }
        self.process_rx();
    }

    fn backend_fd(&self) -> Option<RawFd> {
        Some(self.muxer.epoll_fd())
    }

    fn process_backend(&mut self) {
        self.muxer.process_host_events();
        self.process_rx();
    }
}
