//! Test helpers: the driver side of a split virtqueue over real guest memory.
//!
//! `virtio-queue`'s `MockSplitQueue` places the used ring inside the available ring once more
//! than half the entries have been made available (`SplitQueueRing::end` counts elements, not
//! bytes), which breaks long-running device tests; so this helper lays the rings out itself
//! (desc table, avail ring, used ring, spec layout) and builds the device `Queue` the same way
//! the mock's `create_queue` does.

use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// 64 MiB of test guest memory.
pub fn test_memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap()
}

/// The driver side of one queue.
pub struct DriverQueue<'a> {
    mem: &'a GuestMemoryMmap,
    len: u16,
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
}

impl<'a> DriverQueue<'a> {
    /// A queue of `len` entries with its rings at `base`.
    pub fn new(mem: &'a GuestMemoryMmap, base: u64, len: u16) -> Self {
        let desc = base;
        let avail = desc + 16 * u64::from(len);
        let used = (avail + 6 + 2 * u64::from(len) + 3) & !3;
        let end = used + 6 + 8 * u64::from(len);
        mem.write_slice(&vec![0u8; (end - base) as usize], GuestAddress(base))
            .unwrap();
        Self {
            mem,
            len,
            desc,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
        }
    }

    /// The device-side `Queue` for these rings.
    pub fn device_queue(&self) -> Queue {
        let mut q = Queue::new(self.len).unwrap();
        q.set_size(self.len);
        q.set_ready(true);
        q.set_desc_table_address(Some(self.desc as u32), Some((self.desc >> 32) as u32));
        q.set_avail_ring_address(Some(self.avail as u32), Some((self.avail >> 32) as u32));
        q.set_used_ring_address(Some(self.used as u32), Some((self.used >> 32) as u32));
        q
    }

    /// Makes one chain of `(addr, len, device_writable)` buffers available; returns its head.
    pub fn add(&mut self, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let idx = (head + i as u16) % self.len;
            let next = (idx + 1) % self.len;
            let mut flags = if writable {
                VRING_DESC_F_WRITE as u16
            } else {
                0
            };
            if i + 1 < bufs.len() {
                flags |= VRING_DESC_F_NEXT as u16;
            }
            let at = self.desc + u64::from(idx) * 16;
            self.mem.write_obj(addr, GuestAddress(at)).unwrap();
            self.mem.write_obj(len, GuestAddress(at + 8)).unwrap();
            self.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
            self.mem.write_obj(next, GuestAddress(at + 14)).unwrap();
        }
        self.next_desc = (head + bufs.len() as u16) % self.len;
        let slot = self.avail + 4 + u64::from(self.avail_idx % self.len) * 2;
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx, GuestAddress(self.avail + 2))
            .unwrap();
        head
    }

    /// The used ring index.
    pub fn used_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(self.used + 2)).unwrap()
    }

    /// Used element `i`: (descriptor head, bytes written).
    pub fn used(&self, i: u16) -> (u32, u32) {
        let at = self.used + 4 + u64::from(i % self.len) * 8;
        (
            self.mem.read_obj(GuestAddress(at)).unwrap(),
            self.mem.read_obj(GuestAddress(at + 4)).unwrap(),
        )
    }
}
