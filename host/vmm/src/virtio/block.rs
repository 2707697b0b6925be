//! virtio-blk over a raw disk image: read, write, flush, get-ID; read-only images refuse
//! writes; requests past the end of the disk fail with `VIRTIO_BLK_S_IOERR`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use virtio_queue::{DescriptorChain, Queue, QueueT};
use vm_memory::{ByteValued, GuestMemoryMmap};

use super::{device_type, ActivateError, IrqTrigger, VirtioDevice, VIRTIO_F_VERSION_1};

/// Sector size in bytes.
pub const SECTOR_SIZE: u64 = 512;
const QUEUE_SIZE: u16 = 256;
const VIRTIO_BLK_F_RO: u64 = 1 << 5;
const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
/// Request types.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Write request.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Flush request.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Get-ID request.
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
/// Status: success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Status: I/O error.
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Status: unsupported request.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;
const ID_BYTES: usize = 20;
/// Largest single request we serve (bounds the bounce buffer).
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// The request header the driver puts first.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct RequestHeader {
    /// `VIRTIO_BLK_T_*`.
    pub request_type: u32,
    /// Reserved.
    pub reserved: u32,
    /// First sector.
    pub sector: u64,
}

// SAFETY: plain old data with no padding (4 + 4 + 8 bytes); every bit pattern is valid.
unsafe impl ByteValued for RequestHeader {}

/// Errors opening the disk.
#[derive(Debug, thiserror::Error)]
#[error("block device {path}: {source}")]
pub struct BlockError {
    path: String,
    source: std::io::Error,
}

struct Active {
    mem: GuestMemoryMmap,
    queue: Queue,
    irq: IrqTrigger,
}

/// A virtio-blk device.
pub struct Block {
    file: File,
    capacity_sectors: u64,
    read_only: bool,
    id: [u8; ID_BYTES],
    acked_features: u64,
    active: Option<Active>,
}

impl Block {
    /// Opens `path` (read-only if `read_only`); `id` is what GET_ID returns (truncated to 20).
    pub fn new(path: &Path, read_only: bool, id: &str) -> Result<Self, BlockError> {
        let err = |source| BlockError {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        let mut id_bytes = [0u8; ID_BYTES];
        let n = id.len().min(ID_BYTES);
        id_bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
        Ok(Self {
            file,
            capacity_sectors: len / SECTOR_SIZE,
            read_only,
            id: id_bytes,
            acked_features: 0,
            active: None,
        })
    }

    /// Disk size in sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.capacity_sectors
    }

    /// Byte range of a request, if it lies inside the disk.
    fn range(&self, sector: u64, len: usize) -> Option<u64> {
        let start = sector.checked_mul(SECTOR_SIZE)?;
        let end = start.checked_add(len as u64)?;
        (end <= self.capacity_sectors * SECTOR_SIZE).then_some(start)
    }

    /// Serves one request; returns the bytes written to the driver's buffers.
    fn handle(&mut self, mem: &GuestMemoryMmap, chain: DescriptorChain<&GuestMemoryMmap>) -> u32 {
        let Ok(mut reader) = chain.clone().reader(mem) else {
            return 0;
        };
        let Ok(mut writer) = chain.writer(mem) else {
            return 0;
        };
        let writable = writer.available_bytes();
        if writable == 0 {
            return 0;
        }
        let Ok(mut status_writer) = writer.split_at(writable - 1) else {
            return 0;
        };
        let status = match reader.read_obj::<RequestHeader>() {
            Err(_) => VIRTIO_BLK_S_IOERR,
            Ok(hdr) => match hdr.request_type {
                VIRTIO_BLK_T_IN => {
                    let len = writer.available_bytes();
                    match self
                        .range(hdr.sector, len)
                        .filter(|_| len <= MAX_REQUEST_BYTES)
                    {
                        None => VIRTIO_BLK_S_IOERR,
                        Some(offset) => {
                            let mut buf = vec![0u8; len];
                            match self.file.read_exact_at(&mut buf, offset) {
                                Ok(()) if writer.write_all(&buf).is_ok() => VIRTIO_BLK_S_OK,
                                _ => VIRTIO_BLK_S_IOERR,
                            }
                        }
                    }
                }
                VIRTIO_BLK_T_OUT => {
                    let len = reader.available_bytes();
                    match self
                        .range(hdr.sector, len)
                        .filter(|_| len <= MAX_REQUEST_BYTES)
                    {
                        _ if self.read_only => VIRTIO_BLK_S_IOERR,
                        None => VIRTIO_BLK_S_IOERR,
                        Some(offset) => {
                            let mut buf = vec![0u8; len];
                            match reader.read_exact(&mut buf) {
                                Ok(()) if self.file.write_all_at(&buf, offset).is_ok() => {
                                    VIRTIO_BLK_S_OK
                                }
                                _ => VIRTIO_BLK_S_IOERR,
                            }
                        }
                    }
                }
                VIRTIO_BLK_T_FLUSH => {
                    if self.read_only || self.file.sync_data().is_ok() {
                        VIRTIO_BLK_S_OK
                    } else {
                        VIRTIO_BLK_S_IOERR
                    }
                }
                VIRTIO_BLK_T_GET_ID => {
                    let n = writer.available_bytes().min(ID_BYTES);
                    match writer.write_all(&self.id[..n]) {
                        Ok(()) => VIRTIO_BLK_S_OK,
                        Err(_) => VIRTIO_BLK_S_IOERR,
                    }
                }
                _ => VIRTIO_BLK_S_UNSUPP,
            },
        };
        if status_writer.write_all(&[status]).is_err() {
            return writer.bytes_written() as u32;
        }
        (writer.bytes_written() + 1) as u32
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        device_type::BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn avail_features(&self) -> u64 {
        let ro = if self.read_only { VIRTIO_BLK_F_RO } else { 0 };
        VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH | ro
    }

    fn set_acked_features(&mut self, acked: u64) {
        self.acked_features = acked;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // Config space: capacity (u64, sectors) at offset 0.
        let config = self.capacity_sectors.to_le_bytes();
        data.fill(0);
        if let Some(src) = config.get(offset as usize..) {
            let n = src.len().min(data.len());
            data[..n].copy_from_slice(&src[..n]);
        }
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        mut queues: Vec<Queue>,
        irq: IrqTrigger,
    ) -> Result<(), ActivateError> {
        if queues.len() != 1 || !queues[0].is_valid(&mem) {
            return Err(ActivateError::BadQueues(
                "virtio-blk needs one valid queue".into(),
            ));
        }
        let queue = queues.remove(0);
        self.active = Some(Active { mem, queue, irq });
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
    }

    fn process_queue(&mut self, index: usize) {
        if index != 0 {
            return;
        }
        let Some(mut active) = self.active.take() else {
            return;
        };
        let mem = active.mem.clone();
        let mut served = false;
        while let Some(chain) = active.queue.pop_descriptor_chain(&mem) {
            let head = chain.head_index();
            let len = self.handle(&mem, chain);
            if let Err(e) = active.queue.add_used(&mem, head, len) {
                tracing::warn!("virtio-blk: add_used: {e}");
            }
            served = true;
        }
        if served && active.queue.needs_notification(&mem).unwrap_or(true) {
            active.irq.trigger_vring();
        }
        self.active = Some(active);
    }
}

#[cfg(test)]
#[path = "block_tests.rs"]
mod tests;
