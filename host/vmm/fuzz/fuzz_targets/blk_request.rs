#![no_main]
//! The virtio-blk request decision (header + buffer sizes) must never panic, and what it lets
//! through must lie inside the disk and within the largest request.
//!
//! Input: 16 header bytes, then readable (u32 LE), writable (u32 LE), capacity in sectors
//! (u64 LE) and a read-only byte; missing trailing fields read as zero.

use libfuzzer_sys::fuzz_target;
use vmrun_vmm::virtio::block::{
    plan_request, RequestPlan, REQUEST_HEADER_SIZE, SECTOR_SIZE, VIRTIO_BLK_S_IOERR,
};

fn field<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = data.get(at..) {
        let n = src.len().min(N);
        out[..n].copy_from_slice(&src[..n]);
    }
    out
}

fn fits(offset: u64, len: usize, capacity: u64) -> bool {
    len <= 4 << 20
        && offset % SECTOR_SIZE == 0
        && u128::from(offset) + len as u128 <= u128::from(capacity) * u128::from(SECTOR_SIZE)
}

fuzz_target!(|data: &[u8]| {
    let header = &data[..data.len().min(REQUEST_HEADER_SIZE)];
    let at = REQUEST_HEADER_SIZE;
    let readable = u32::from_le_bytes(field(data, at)) as usize;
    let writable = u32::from_le_bytes(field(data, at + 4)) as usize;
    let capacity = u64::from_le_bytes(field(data, at + 8));
    let read_only = field::<1>(data, at + 16)[0] & 1 == 1;
    let plan = plan_request(header, readable, writable, capacity, read_only);
    if header.len() < REQUEST_HEADER_SIZE {
        assert_eq!(plan, RequestPlan::Fail(VIRTIO_BLK_S_IOERR));
    }
    match plan {
        RequestPlan::Read { offset, len } => {
            assert_eq!(len, writable);
            assert!(fits(offset, len, capacity));
        }
        RequestPlan::Write { offset, len } => {
            assert!(!read_only);
            assert_eq!(len, readable);
            assert!(fits(offset, len, capacity));
        }
        RequestPlan::GetId { len } => assert!(len <= 20 && len <= writable),
        RequestPlan::Flush | RequestPlan::Fail(_) => {}
    }
});
