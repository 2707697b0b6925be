//! Full boot: a real Linux kernel with an initramfs whose init echoes one message on vsock
//! port 1024, reached through the hybrid vsock socket; then the guest reboots (i8042 reset).
//!
//! Runs on real KVM: here on hardware KVM, else inside the nested KVM host (`vmrun-kvmhost`:
//! kvm-amd under QEMU TCG); the guest kernel from
//! `kernel-config/build.sh` (or `VMRUN_TEST_KERNEL`: a kernel with virtio-mmio cmdline devices
//! and virtio-vsock built in), and `gcc` with static glibc to build the init
//! (`vmrun-vmtest`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vmrun_vmm::{BootSource, ExitReason, SerialOutput, VmConfig, Vmm, VsockConfig};

#[test]
fn boots_a_kernel_and_round_trips_bytes_over_hybrid_vsock() {
    let prep = tempfile::tempdir().unwrap();
    vmrun_kvmhost::nested_test(
        || {
            Ok(vmrun_kvmhost::NestedInputs::new()
                .file("kernel", vmrun_vmtest::guest_kernel()?)
                .file("initrd", vmrun_vmtest::echo_initramfs(prep.path())?))
        },
        |inputs| boot_and_echo(inputs.path("kernel"), inputs.path("initrd")),
    );
}

fn boot_and_echo(kernel: &std::path::Path, initrd: &std::path::Path) {
    let (kernel, initrd) = (kernel.to_path_buf(), initrd.to_path_buf());
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vsock.sock");
    let serial = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut vm = Vmm::start(VmConfig {
        vcpus: 2,
        memory_mib: 256,
        boot: BootSource::Kernel {
            kernel,
            initrd: Some(initrd),
            cmdline: "console=ttyS0 reboot=k panic=-1 quiet".into(),
        },
        vsock: Some(VsockConfig {
            guest_cid: 3,
            uds_path: sock.clone(),
        }),
        block_devices: vec![],
        serial: SerialOutput::Buffer(serial.clone()),
        seccomp: true,
    })
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        assert!(
            Instant::now() < deadline,
            "guest never accepted on vsock port 1024; serial:\n{}",
            String::from_utf8_lossy(&serial.lock().unwrap())
        );
        if let Ok(mut s) = UnixStream::connect(&sock) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s.write_all(b"CONNECT 1024\n").unwrap();
            let mut line = Vec::new();
            let mut b = [0u8];
            while let Ok(1) = s.read(&mut b) {
                line.push(b[0]);
                if b[0] == b'\n' {
                    break;
                }
            }
            if line.starts_with(b"OK ") {
                break s;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("guest agent ready after {:?}", started.elapsed());
    stream.write_all(b"hello from the host").unwrap();
    let mut echo = [0u8; 19];
    stream.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"hello from the host");
    let reason = vm
        .wait_timeout(Duration::from_secs(30))
        .expect("guest reboots");
    assert_eq!(reason, ExitReason::Reset);
}
