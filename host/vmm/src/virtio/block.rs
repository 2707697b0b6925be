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

/// Size of [`RequestHeader`] on the wire.
pub const REQUEST_HEADER_SIZE: usize = 16;

/// What a request asks the device to do, decided from its header and buffer sizes alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestPlan {
    /// Read `len` bytes at byte `offset` of the disk into the driver's buffers.
    Read {
        /// Byte offset in the disk.
        offset: u64,
        /// Bytes to read.
        len: usize,
    },
    /// Write the driver's `len` bytes at byte `offset` of the disk.
    Write {
        /// Byte offset in the disk.
        offset: u64,
        /// Bytes to write.
        len: usize,
    },
    /// Flush the disk.
    Flush,
    /// Copy the first `len` bytes of the device ID.
    GetId {
        /// Bytes of the ID to copy.
        len: usize,
    },
    /// Answer with this status without touching the disk.
    Fail(u8),
}

/// Byte offset of `len` bytes at `sector`, if they lie inside a disk of `capacity_sectors`
/// and within the largest request served.
fn disk_range(sector: u64, len: usize, capacity_sectors: u64) -> Option<u64> {
    if len > MAX_REQUEST_BYTES {
        return None;
    }
    let start = sector.checked_mul(SECTOR_SIZE)?;
    let end = start.checked_add(len as u64)?;
    (end <= capacity_sectors.checked_mul(SECTOR_SIZE)?).then_some(start)
}

/// Decides a request from its header bytes (`header`: the [`RequestHeader`] layout, little
/// endian; anything shorter is an I/O error), the bytes the driver made readable after the
/// header (`readable`, a write's data) and writable before the status byte (`writable`, a
/// read's or GET_ID's buffer).
pub fn plan_request(
    header: &[u8],
    readable: usize,
    writable: usize,
    capacity_sectors: u64,
    read_only: bool,
) -> RequestPlan {
    let Some(header) = header.get(..REQUEST_HEADER_SIZE) else {
        return RequestPlan::Fail(VIRTIO_BLK_S_IOERR);
    };
    let mut request_type = [0u8; 4];
    request_type.copy_from_slice(&header[..4]);
    let mut sector = [0u8; 8];
    sector.copy_from_slice(&header[8..16]);
    let sector = u64::from_le_bytes(sector);
    let range = |len| disk_range(sector, len, capacity_sectors);
    match u32::from_le_bytes(request_type) {
        VIRTIO_BLK_T_IN => match range(writable) {
            Some(offset) => RequestPlan::Read {
                offset,
                len: writable,
            },
            None => RequestPlan::Fail(VIRTIO_BLK_S_IOERR),
        },
        VIRTIO_BLK_T_OUT if read_only => RequestPlan::Fail(VIRTIO_BLK_S_IOERR),
        VIRTIO_BLK_T_OUT => match range(readable) {
            Some(offset) => RequestPlan::Write {
                offset,
                len: readable,
            },
            None => RequestPlan::Fail(VIRTIO_BLK_S_IOERR),
        },
        VIRTIO_BLK_T_FLUSH => RequestPlan::Flush,
        VIRTIO_BLK_T_GET_ID => RequestPlan::GetId {
            len: writable.min(ID_BYTES),
        },
        _ => RequestPlan::Fail(VIRTIO_BLK_S_UNSUPP),
    }
}

/// Errors opening the disk.
#[derive(Debug, thiserror::Error)]
#[error("block device {path}")]
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
        let mut header = [0u8; REQUEST_HEADER_SIZE];
        let header: &[u8] = match reader.read_exact(&mut header) {
            Ok(()) => &header,
            Err(_) => &[],
        };
        let plan = plan_request(
            header,
            reader.available_bytes(),
            writer.available_bytes(),
            self.capacity_sectors,
            self.read_only,
        );
        let status = match plan {
            RequestPlan::Fail(status) => status,
            RequestPlan::Read { offset, len } => {
                let mut buf = vec![0u8; len];
                match self.file.read_exact_at(&mut buf, offset) {
                    Ok(()) if writer.write_all(&buf).is_ok() => VIRTIO_BLK_S_OK,
                    _ => VIRTIO_BLK_S_IOERR,
                }
            }
            RequestPlan::Write { offset, len } => {
                let mut buf = vec![0u8; len];
                match reader.read_exact(&mut buf) {
                    Ok(()) if self.file.write_all_at(&buf, offset).is_ok() => VIRTIO_BLK_S_OK,
                    _ => VIRTIO_BLK_S_IOERR,
                }
            }
            RequestPlan::Flush => {
                if self.read_only || self.file.sync_data().is_ok() {
                    VIRTIO_BLK_S_OK
                } else {
                    VIRTIO_BLK_S_IOERR
                }
            }
            RequestPlan::GetId { len } => match writer.write_all(&self.id[..len]) {
                Ok(()) => VIRTIO_BLK_S_OK,
                Err(_) => VIRTIO_BLK_S_IOERR,
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
