//! The guest buffers of one descriptor chain as host memory slices, for moving bytes between
//! guest memory and a host fd without an intermediate buffer (`readv`/`writev` straight on the
//! guest's pages).

use std::io;
use std::os::fd::AsRawFd;

use virtio_queue::DescriptorChain;
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

/// Which descriptors of a chain to take: the driver's readable ones (a request, TX) or the
/// device-writable ones (a response, RX).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Descriptors the device reads.
    Readable,
    /// Descriptors the device writes.
    Writable,
}

/// Why a chain cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IovError {
    /// A descriptor points outside guest memory.
    #[error("descriptor outside guest memory")]
    BadAddress,
    /// The chain's buffers add up to more than 4 GiB.
    #[error("descriptor chain too long")]
    TooLong,
}

/// An ordered list of guest memory slices (what is left of a chain's buffers).
#[derive(Clone, Debug, Default)]
pub struct GuestIov<'a> {
    slices: Vec<VolatileSlice<'a>>,
    len: usize,
}

impl<'a> GuestIov<'a> {
    /// The `dir` buffers of `chain`, in chain order.
    pub fn from_chain(
        mem: &'a GuestMemoryMmap,
        chain: DescriptorChain<&'a GuestMemoryMmap>,
        dir: Direction,
    ) -> Result<Self, IovError> {
        let mut iov = Self::default();
        for desc in chain {
            if desc.is_write_only() != (dir == Direction::Writable) || desc.len() == 0 {
                continue;
            }
            for slice in mem.get_slices(desc.addr(), desc.len() as usize) {
                let slice = slice.map_err(|_| IovError::BadAddress)?;
                iov.len = iov
                    .len
                    .checked_add(slice.len())
                    .filter(|&l| l <= u32::MAX as usize)
                    .ok_or(IovError::TooLong)?;
                iov.slices.push(slice);
            }
        }
        Ok(iov)
    }

    /// Bytes left.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are left.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops the first `n` bytes (all of them if fewer are left).
    pub fn advance(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        let mut drop = 0;
        for slice in &mut self.slices {
            if n < slice.len() {
                // `n` is in bounds: checked just above.
                if let Ok(rest) = slice.offset(n) {
                    *slice = rest;
                }
                break;
            }
            n -= slice.len();
            drop += 1;
        }
        self.slices.drain(..drop);
    }

    /// Keeps only the first `n` bytes.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len {
            return;
        }
        self.len = n;
        let mut left = n;
        let mut keep = 0;
        for slice in &mut self.slices {
            if left == 0 {
                break;
            }
            if left < slice.len() {
                if let Ok(head) = slice.subslice(0, left) {
                    *slice = head;
                }
                left = 0;
            } else {
                left -= slice.len();
            }
            keep += 1;
        }
        self.slices.truncate(keep);
    }

    /// Copies the first `buf.len()` bytes out and drops them; false (nothing dropped) if
    /// fewer are left.
    pub fn read_exact(&mut self, buf: &mut [u8]) -> bool {
        if buf.len() > self.len {
            return false;
        }
        let mut done = 0;
        for slice in &self.slices {
            if done == buf.len() {
                break;
            }
            done += slice.copy_to(&mut buf[done..]);
        }
        self.advance(done);
        true
    }

    /// Copies `buf` in at the front and drops what it covers; false (nothing written) if it
    /// does not fit.
    pub fn write_all(&mut self, buf: &[u8]) -> bool {
        if buf.len() > self.len {
            return false;
        }
        let mut done = 0;
        for slice in &self.slices {
            if done == buf.len() {
                break;
            }
            let n = slice.len().min(buf.len() - done);
            slice.copy_from(&buf[done..done + n]);
            done += n;
        }
        self.advance(done);
        true
    }

    /// Appends the remaining bytes to `out` and drops them.
    pub fn drain_into(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.len, 0);
        let mut done = start;
        for slice in &self.slices {
            done += slice.copy_to(&mut out[done..]);
        }
        self.slices.clear();
        self.len = 0;
    }

    /// One `writev(2)` of the remaining bytes to `fd`; returns how many it took (not dropped:
    /// call [`GuestIov::advance`]).
    pub fn write_to(&self, fd: &impl AsRawFd) -> io::Result<usize> {
        let guards: Vec<_> = self.slices.iter().map(|s| s.ptr_guard()).collect();
        let iovecs: Vec<libc::iovec> = guards
            .iter()
            .map(|g| libc::iovec {
                iov_base: g.as_ptr() as *mut libc::c_void,
                iov_len: g.len(),
            })
            .collect();
        // SAFETY: each iovec covers one slice of mapped guest memory that `self` borrows for
        // its lifetime (the guards keep the mappings); writev only reads from them.
        let n = unsafe { libc::writev(fd.as_raw_fd(), iovecs.as_ptr(), iov_count(&iovecs)) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// One `readv(2)` from `fd` into the remaining bytes; returns how many it wrote (not
    /// dropped: call [`GuestIov::advance`]).
    pub fn read_from(&self, fd: &impl AsRawFd) -> io::Result<usize> {
        let guards: Vec<_> = self.slices.iter().map(|s| s.ptr_guard_mut()).collect();
        let iovecs: Vec<libc::iovec> = guards
            .iter()
            .map(|g| libc::iovec {
                iov_base: g.as_ptr() as *mut libc::c_void,
                iov_len: g.len(),
            })
            .collect();
        // Guest memory may change under these shared mappings at any time (the guest owns
        // the buffers' contents); readv writes only inside them.
        // SAFETY: each iovec covers one slice of mapped guest memory that `self` borrows for
        // its lifetime (the guards keep the mappings).
        let n = unsafe { libc::readv(fd.as_raw_fd(), iovecs.as_ptr(), iov_count(&iovecs)) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut left = n as usize;
        for slice in &self.slices {
            use vm_memory::bitmap::Bitmap;
            let m = left.min(slice.len());
            slice.bitmap().mark_dirty(0, m);
            left -= m;
        }
        Ok(n as usize)
    }
}

/// At most `IOV_MAX` (1024) entries: a chain is at most a queue long (256 here), so this cap
/// only matters for a chain split over many memory regions, which then goes out in parts.
fn iov_count(iovecs: &[libc::iovec]) -> libc::c_int {
    iovecs.len().min(1024) as libc::c_int
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testing::{test_memory, DriverQueue};
    use std::io::{Read, Write};
    use virtio_queue::QueueT;
    use vm_memory::{Bytes, GuestAddress};

    #[test]
    fn chain_slices_copy_advance_and_socket_io() {
        let mem = test_memory();
        let mut q = DriverQueue::new(&mem, 0, 16);
        mem.write_slice(b"hello ", GuestAddress(0x10000)).unwrap();
        mem.write_slice(b"world", GuestAddress(0x20000)).unwrap();
        q.add(&[(0x10000, 6, false), (0x20000, 5, false), (0x30000, 8, true)]);
        let mut dq = q.device_queue();
        let chain = dq.pop_descriptor_chain(&mem).unwrap();
        let mut r = GuestIov::from_chain(&mem, chain.clone(), Direction::Readable).unwrap();
        let mut w = GuestIov::from_chain(&mem, chain, Direction::Writable).unwrap();
        assert_eq!((r.len(), w.len()), (11, 8));
        let mut hello = [0u8; 3];
        assert!(r.read_exact(&mut hello));
        assert_eq!(&hello, b"hel");
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut part = r.clone();
        part.truncate(6);
        assert_eq!(part.write_to(&a).unwrap(), 6);
        let mut got = [0u8; 6];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"lo wor");
        r.advance(6);
        let mut rest = Vec::new();
        r.drain_into(&mut rest);
        assert_eq!(rest, b"ld");
        assert!(w.write_all(b"ab"));
        b.write_all(b"cdefghij").unwrap();
        assert_eq!(w.read_from(&a).unwrap(), 6);
        let mut out = [0u8; 8];
        mem.read_slice(&mut out, GuestAddress(0x30000)).unwrap();
        assert_eq!(&out, b"abcdefgh");
        assert!(!w.write_all(&[0; 9]));
        a.flush().unwrap();
    }
}
