use super::*;
use crate::virtio::testing::{test_memory, DriverQueue};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

const HDR: u64 = 0x10_0000;
const DATA: u64 = 0x20_0000;
const STATUS: u64 = 0x30_0000;

struct Rig {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

fn disk(sectors: u64) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let data: Vec<u8> = (0..sectors * SECTOR_SIZE)
        .map(|i| (i / SECTOR_SIZE) as u8)
        .collect();
    std::fs::write(&path, data).unwrap();
    Rig { _dir: dir, path }
}

fn request(
    mem: &GuestMemoryMmap,
    q: &mut DriverQueue,
    kind: u32,
    sector: u64,
    data_len: u32,
    data_writable: bool,
) {
    mem.write_obj(
        RequestHeader {
            request_type: kind,
            reserved: 0,
            sector,
        },
        GuestAddress(HDR),
    )
    .unwrap();
    mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    if data_len == 0 {
        q.add(&[(HDR, 16, false), (STATUS, 1, true)]);
    } else {
        q.add(&[
            (HDR, 16, false),
            (DATA, data_len, data_writable),
            (STATUS, 1, true),
        ]);
    }
}

fn status(mem: &GuestMemoryMmap) -> u8 {
    mem.read_obj(GuestAddress(STATUS)).unwrap()
}

fn active(rig: &Rig, read_only: bool, mem: &GuestMemoryMmap, q: &DriverQueue) -> Block {
    let mut blk = Block::new(&rig.path, read_only, "vmrun-test-disk").unwrap();
    let irq = IrqTrigger::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
    blk.activate(mem.clone(), vec![q.device_queue()], irq)
        .unwrap();
    blk
}

#[test]
fn config_reports_capacity_and_features() {
    let rig = disk(8);
    let blk = Block::new(&rig.path, true, "x").unwrap();
    let mut cap = [0u8; 8];
    blk.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 8);
    assert_ne!(blk.avail_features() & VIRTIO_BLK_F_RO, 0);
    assert_ne!(blk.avail_features() & VIRTIO_BLK_F_FLUSH, 0);
}

#[test]
fn read_write_flush_and_get_id() {
    let rig = disk(8);
    let mem = test_memory();
    let mut q = DriverQueue::new(&mem, 0, 16);
    let mut blk = active(&rig, false, &mem, &q);

    request(&mem, &mut q, VIRTIO_BLK_T_IN, 3, 1024, true);
    blk.process_queue(0);
    assert_eq!(q.used_idx(), 1);
    assert_eq!(q.used(0).1, 1025);
    assert_eq!(status(&mem), VIRTIO_BLK_S_OK);
    let mut buf = vec![0u8; 1024];
    mem.read_slice(&mut buf, GuestAddress(DATA)).unwrap();
    assert!(buf[..512].iter().all(|&b| b == 3) && buf[512..].iter().all(|&b| b == 4));

    mem.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    request(&mem, &mut q, VIRTIO_BLK_T_OUT, 7, 512, false);
    blk.process_queue(0);
    assert_eq!(status(&mem), VIRTIO_BLK_S_OK);
    assert_eq!(q.used(1).1, 1);
    let on_disk = std::fs::read(&rig.path).unwrap();
    assert!(on_disk[7 * 512..].iter().all(|&b| b == 0xab));

    request(&mem, &mut q, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    blk.process_queue(0);
    assert_eq!(status(&mem), VIRTIO_BLK_S_OK);

    request(&mem, &mut q, VIRTIO_BLK_T_GET_ID, 0, 20, true);
    blk.process_queue(0);
    assert_eq!(status(&mem), VIRTIO_BLK_S_OK);
    let mut id = [0u8; 15];
    mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id, b"vmrun-test-disk");

    request(&mem, &mut q, 99, 0, 0, false);
    blk.process_queue(0);
    assert_eq!(status(&mem), VIRTIO_BLK_S_UNSUPP);
    assert_eq!(q.used_idx(), 5);
}

#[test]
fn out_of_range_and_read_only_fail() {
    let rig = disk(4);
    let mem = test_memory();
    let mut q = DriverQueue::new(&mem, 0, 16);
    let mut blk = active(&rig, true, &mem, &q);
    // Sector 3 + 1024 bytes runs past the 4-sector disk.
    request(&mem, &mut q, VIRTIO_BLK_T_IN, 3, 1024, true);
    blk.process_queue(0);
    assert_eq!(status(&mem), VIRTIO_BLK_S_IOERR);
    request(&mem, &mut q, VIRTIO_BLK_T_IN, u64::MAX, 512, true);
    blk.process_queue(0);
    assert_eq!(status(&mem), VIRTIO_BLK_S_IOERR);
    // Writes to a read-only disk fail and leave it untouched.
    request(&mem, &mut q, VIRTIO_BLK_T_OUT, 0, 512, false);
    blk.process_queue(0);
    assert_eq!(status(&mem), VIRTIO_BLK_S_IOERR);
    assert!(std::fs::read(&rig.path).unwrap()[..512]
        .iter()
        .all(|&b| b == 0));
    assert_eq!(q.used_idx(), 3);
}

fn header(kind: u32, sector: u64) -> Vec<u8> {
    let mut h = kind.to_le_bytes().to_vec();
    h.extend_from_slice(&[0; 4]);
    h.extend_from_slice(&sector.to_le_bytes());
    h
}

#[test]
fn request_plans_come_from_header_and_buffer_sizes() {
    let io_err = RequestPlan::Fail(VIRTIO_BLK_S_IOERR);
    // A header cut short is an I/O error, not a panic.
    assert_eq!(plan_request(&header(0, 0)[..15], 0, 512, 8, false), io_err);
    assert_eq!(
        plan_request(&header(VIRTIO_BLK_T_IN, 2), 0, 1024, 8, false),
        RequestPlan::Read {
            offset: 1024,
            len: 1024
        }
    );
    // The last sector exactly fits; one byte more does not; offsets never overflow.
    assert!(matches!(
        plan_request(&header(VIRTIO_BLK_T_OUT, 7), 512, 0, 8, false),
        RequestPlan::Write { offset: 3584, .. }
    ));
    assert_eq!(
        plan_request(&header(VIRTIO_BLK_T_OUT, 7), 513, 0, 8, false),
        io_err
    );
    assert_eq!(
        plan_request(
            &header(VIRTIO_BLK_T_IN, u64::MAX / 256),
            512,
            512,
            u64::MAX,
            false
        ),
        io_err
    );
    assert_eq!(
        plan_request(
            &header(VIRTIO_BLK_T_IN, 0),
            0,
            MAX_REQUEST_BYTES + 512,
            u64::MAX / 512,
            false
        ),
        io_err
    );
    assert_eq!(
        plan_request(&header(VIRTIO_BLK_T_OUT, 0), 512, 0, 8, true),
        io_err
    );
    assert_eq!(
        plan_request(&header(VIRTIO_BLK_T_GET_ID, 0), 0, 64, 8, true),
        RequestPlan::GetId { len: ID_BYTES }
    );
    assert_eq!(
        plan_request(&header(VIRTIO_BLK_T_FLUSH, 0), 0, 0, 8, true),
        RequestPlan::Flush
    );
    assert_eq!(
        plan_request(&header(3, 0), 0, 0, 8, false),
        RequestPlan::Fail(VIRTIO_BLK_S_UNSUPP)
    );
}
