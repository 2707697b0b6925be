#![no_main]
//! The hybrid-vsock `CONNECT <port>\n` parser must never panic or read past the line.

use libfuzzer_sys::fuzz_target;
use vmrun_vmm::virtio::vsock::handshake::{parse, Handshake, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    if let Handshake::Connect { consumed, .. } = parse(data) {
        assert!(consumed <= data.len() && consumed <= MAX_LINE);
        assert_eq!(data[consumed - 1], b'\n');
    }
});
