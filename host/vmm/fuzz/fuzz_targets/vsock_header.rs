#![no_main]
//! The vsock packet header parser must never panic, and what it accepts must round-trip.

use libfuzzer_sys::fuzz_target;
use vmrun_vmm::virtio::vsock::packet::{VsockHeader, HDR_SIZE, MAX_PKT_DATA};

fuzz_target!(|data: &[u8]| {
    if let Ok(hdr) = VsockHeader::parse(data) {
        assert!(hdr.len <= MAX_PKT_DATA);
        assert_eq!(&hdr.to_bytes()[..], &data[..HDR_SIZE]);
    }
});
