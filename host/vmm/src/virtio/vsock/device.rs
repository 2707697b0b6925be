//! The virtio-vsock device: RX (0), TX (1) and event (2) queues, moving packets between the
//! guest and the [`Muxer`].

use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::path::Path;

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;

use super::muxer::Muxer;
use super::packet::{Packet, VsockHeader, HDR_SIZE, MAX_PKT_DATA};
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

    fn process_tx(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = active.mem.clone();
        let mut used = false;
        while let Some(chain) = active.queues[TX].pop_descriptor_chain(&mem) {
            let head = chain.head_index();
            let packet = chain.reader(&mem).ok().and_then(|mut reader| {
                let mut hdr = [0u8; HDR_SIZE];
                reader.read_exact(&mut hdr).ok()?;
                let hdr = VsockHeader::parse(&hdr)
                    .map_err(|e| tracing::debug!("vsock: bad TX header: {e:?}"))
                    .ok()?;
                let mut data = vec![0u8; hdr.len as usize];
                reader.read_exact(&mut data).ok()?;
                Some(Packet { hdr, data })
            });
            if let Err(e) = active.queues[TX].add_used(&mem, head, 0) {
                tracing::warn!("vsock: TX add_used: {e}");
            }
            used = true;
            if let Some(packet) = packet {
                self.muxer.handle_guest_packet(packet);
            }
        }
        if used && active.queues[TX].needs_notification(&mem).unwrap_or(true) {
            active.irq.trigger_vring();
        }
    }

    fn process_rx(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = active.mem.clone();
        let queue = &mut active.queues[RX];
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(&mem) {
            let head = chain.head_index();
            let Ok(mut writer) = chain.writer(&mem) else {
                let _ = queue.add_used(&mem, head, 0);
                used = true;
                continue;
            };
            let room = writer.available_bytes();
            if room < HDR_SIZE {
                let _ = queue.add_used(&mem, head, 0);
                used = true;
                continue;
            }
            let max = ((room - HDR_SIZE) as u32).min(MAX_PKT_DATA);
            let Some(pkt) = self.muxer.next_rx_packet(max) else {
                queue.go_to_previous_position();
                break;
            };
            let written = writer
                .write_all(&pkt.hdr.to_bytes())
                .and_then(|_| writer.write_all(&pkt.data))
                .map(|_| writer.bytes_written() as u32)
                .unwrap_or(0);
            if let Err(e) = queue.add_used(&mem, head, written) {
                tracing::warn!("vsock: RX add_used: {e}");
            }
            used = true;
        }
        if used && queue.needs_notification(&mem).unwrap_or(true) {
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
