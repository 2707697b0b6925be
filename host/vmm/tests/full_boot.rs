//! Full boot: a real Linux kernel with an initramfs whose init echoes one message on vsock
//! port 1024, reached through the hybrid vsock socket; then the guest reboots (i8042 reset).
//!
//! Needs hardware KVM (skips with the reason on PVM hosts), a kernel with virtio-mmio
//! (`CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`) and virtio-vsock built in, given as
//! `VMRUN_TEST_KERNEL` (ELF vmlinux or bzImage; e.g. built from `kernel-config/`), and `gcc`
//! with static glibc to build the init.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vmrun_vmm::{BootSource, ExitReason, SerialOutput, VmConfig, Vmm, VsockConfig};

const INIT_C: &str = r#"
#include <sys/socket.h>
#include <linux/vm_sockets.h>
#include <sys/reboot.h>
#include <unistd.h>
#include <stdio.h>
int main(void) {
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_port = 1024, .svm_cid = VMADDR_CID_ANY };
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1)) { perror("vsock"); reboot(RB_AUTOBOOT); }
    printf("init: listening on vsock port 1024\n"); fflush(stdout);
    int c = accept(s, 0, 0);
    char buf[256];
    int n = read(c, buf, sizeof buf);
    if (n > 0) write(c, buf, n);
    close(c);
    sync();
    reboot(RB_AUTOBOOT);
    return 0;
}
"#;

/// (name, mode, contents, (rdev major, rdev minor)).
type CpioEntry<'a> = (&'a str, u32, &'a [u8], (u32, u32));

/// A `newc` cpio archive.
fn cpio(entries: &[CpioEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let pad = |out: &mut Vec<u8>| {
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    let mut all: Vec<CpioEntry> = entries.to_vec();
    all.push(("TRAILER!!!", 0, &[], (0, 0)));
    for (ino, (name, mode, data, (rmaj, rmin))) in all.into_iter().enumerate() {
        let fields = [
            ino as u32 + 1,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rmaj,
            rmin,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad(&mut out);
        out.extend_from_slice(data);
        pad(&mut out);
    }
    out
}

fn build_initramfs(dir: &Path) -> Option<std::path::PathBuf> {
    let src = dir.join("init.c");
    let bin = dir.join("init");
    std::fs::write(&src, INIT_C).ok()?;
    let ok = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return None;
    }
    let init = std::fs::read(&bin).ok()?;
    let archive = cpio(&[
        ("dev", 0o040755, &[], (0, 0)),
        ("dev/console", 0o020600, &[], (5, 1)),
        ("init", 0o100755, &init, (0, 0)),
    ]);
    let path = dir.join("initramfs.cpio");
    std::fs::write(&path, archive).ok()?;
    Some(path)
}

#[test]
fn boots_a_kernel_and_round_trips_bytes_over_hybrid_vsock() {
    if let Some(why) = vmrun_vmm::pvm::kernel_boot_unsupported_reason() {
        eprintln!("skipping full boot test: {why}");
        return;
    }
    let Some(kernel) = std::env::var_os("VMRUN_TEST_KERNEL") else {
        eprintln!(
            "skipping full boot test: set VMRUN_TEST_KERNEL to a kernel with virtio-mmio and \
             virtio-vsock built in"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(initrd) = build_initramfs(dir.path()) else {
        eprintln!("skipping full boot test: cannot build a static init with gcc");
        return;
    };
    let sock = dir.path().join("vsock.sock");
    let serial = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut vm = Vmm::start(VmConfig {
        vcpus: 2,
        memory_mib: 256,
        boot: BootSource::Kernel {
            kernel: kernel.into(),
            initrd: Some(initrd),
            cmdline: "console=ttyS0 reboot=k panic=-1 quiet".into(),
        },
        vsock: Some(VsockConfig {
            guest_cid: 3,
            uds_path: sock.clone(),
        }),
        block_devices: vec![],
        serial: SerialOutput::Buffer(serial.clone()),
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
