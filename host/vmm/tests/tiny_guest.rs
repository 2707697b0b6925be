//! KVM-level tests: small hand-assembled guests run through the whole VMM (our register
//! setup, serial device, MMIO bus, virtio-mmio transport, exit handling). They skip when
//! `/dev/kvm` cannot be opened.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress};
use vmrun_vmm::kernel::KernelError;
use vmrun_vmm::{
    BlockDeviceConfig, BootSource, CpuMode, ExitReason, SerialOutput, StartError, VmConfig, Vmm,
};

fn kvm_or_skip() -> bool {
    match vmrun_vmm::pvm::kvm_usable() {
        Ok(()) => true,
        Err(e) => {
            vmrun_test_skip::report(format_args!("{e}"));
            false
        }
    }
}

fn raw(image: &[u8], mode: CpuMode, vcpus: u8) -> (VmConfig, Arc<Mutex<Vec<u8>>>) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let config = VmConfig {
        vcpus,
        memory_mib: 4,
        boot: BootSource::Raw {
            image: image.to_vec(),
            load_addr: 0x1000,
            mode,
            irqchip: false,
        },
        vsock: None,
        block_devices: vec![],
        serial: SerialOutput::Buffer(out.clone()),
        seccomp: true,
    };
    (config, out)
}

/// Like [`raw`], with the in-kernel irqchip and PIT a kernel boot gets: KVM handles `HLT`.
fn raw_irqchip(image: &[u8], mode: CpuMode, vcpus: u8) -> (VmConfig, Arc<Mutex<Vec<u8>>>) {
    let (mut config, out) = raw(image, mode, vcpus);
    if let BootSource::Raw { irqchip, .. } = &mut config.boot {
        *irqchip = true;
    }
    (config, out)
}

fn wait(vm: &mut vmrun_vmm::RunningVm) -> ExitReason {
    vm.wait_timeout(Duration::from_secs(20))
        .expect("guest did not stop within 20 s")
}

#[test]
fn real_mode_guest_writes_serial_and_memory_then_halts() {
    if !kvm_or_skip() {
        return;
    }
    // mov dx,0x3f8; mov al,'O'; out dx,al; mov al,'K'; out dx,al; mov byte [0x2000],0x5a; hlt
    let code = [
        0xba, 0xf8, 0x03, 0xb0, b'O', 0xee, 0xb0, b'K', 0xee, 0xc6, 0x06, 0x00, 0x20, 0x5a, 0xf4,
    ];
    let (config, out) = raw(&code, CpuMode::Real, 1);
    let mut vm = Vmm::start(config).unwrap();
    assert_eq!(wait(&mut vm), ExitReason::Halted);
    assert_eq!(&*out.lock().unwrap(), b"OK");
    let byte: u8 = vm.guest_memory().read_obj(GuestAddress(0x2000)).unwrap();
    assert_eq!(byte, 0x5a);
}

#[test]
fn long_mode_guest_reads_virtio_mmio_and_writes_a_pattern() {
    if !kvm_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    #[rustfmt::skip]
    let code = [
        0x66, 0xba, 0xf8, 0x03,             // mov dx, 0x3f8
        0xb0, b'L', 0xee,                   // mov al, 'L'; out dx, al
        0xbb, 0x00, 0x00, 0x00, 0xd0,       // mov ebx, 0xd0000000   (virtio-mmio window 0)
        0x8b, 0x03,                         // mov eax, [rbx]        (MagicValue)
        0xb9, 0x00, 0x30, 0x00, 0x00,       // mov ecx, 0x3000
        0x89, 0x01,                         // mov [rcx], eax
        0xc7, 0x43, 0x30, 0, 0, 0, 0,       // mov dword [rbx+0x30], 0 (QueueSel = 0)
        0x8b, 0x43, 0x34,                   // mov eax, [rbx+0x34]   (QueueNumMax)
        0x89, 0x41, 0x04,                   // mov [rcx+4], eax
        0x8b, 0x43, 0x08,                   // mov eax, [rbx+0x08]   (DeviceID)
        0x89, 0x41, 0x08,                   // mov [rcx+8], eax
        0xbf, 0x00, 0x00, 0x10, 0x00,       // mov edi, 0x100000
        0xb9, 0x00, 0x02, 0x00, 0x00,       // mov ecx, 512
        0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // mov rax, 0x1122334455667788
        0xf3, 0x48, 0xab,                   // rep stosq
        0xf4,                               // hlt
    ];
    let (mut config, out) = raw(&code, CpuMode::Long, 1);
    config.block_devices.push(BlockDeviceConfig {
        path: disk,
        read_only: true,
    });
    let mut vm = Vmm::start(config).unwrap();
    assert_eq!(wait(&mut vm), ExitReason::Halted);
    assert_eq!(&*out.lock().unwrap(), b"L");
    let mem = vm.guest_memory();
    let magic: u32 = mem.read_obj(GuestAddress(0x3000)).unwrap();
    let qmax: u32 = mem.read_obj(GuestAddress(0x3004)).unwrap();
    let dev_id: u32 = mem.read_obj(GuestAddress(0x3008)).unwrap();
    assert_eq!(magic, 0x7472_6976, "virtio-mmio magic 'virt'");
    assert_eq!(qmax, 256);
    assert_eq!(dev_id, 2, "virtio-blk device id");
    for i in 0..512u64 {
        let v: u64 = mem.read_obj(GuestAddress(0x10_0000 + i * 8)).unwrap();
        assert_eq!(v, 0x1122_3344_5566_7788, "qword {i}");
    }
}

#[test]
fn two_vcpus_each_write_their_index() {
    if !kvm_or_skip() {
        return;
    }
    // mov ax,di; add al,'A'; mov dx,0x3f8; out dx,al; mov [di+0x2000],al; hlt
    let code = [
        0x89, 0xf8, 0x04, 0x41, 0xba, 0xf8, 0x03, 0xee, 0x88, 0x85, 0x00, 0x20, 0xf4,
    ];
    let (config, out) = raw(&code, CpuMode::Real, 2);
    let mut vm = Vmm::start(config).unwrap();
    assert_eq!(wait(&mut vm), ExitReason::Halted);
    let mut serial = out.lock().unwrap().clone();
    serial.sort();
    assert_eq!(serial, b"AB");
    let mut bytes = [0u8; 2];
    vm.guest_memory()
        .read_slice(&mut bytes, GuestAddress(0x2000))
        .unwrap();
    assert_eq!(&bytes, b"AB");
}

#[test]
fn i8042_reset_ends_the_vm() {
    if !kvm_or_skip() {
        return;
    }
    // mov al,0xfe; out 0x64,al; jmp $
    let code = [0xb0, 0xfe, 0xe6, 0x64, 0xeb, 0xfe];
    let (config, _) = raw(&code, CpuMode::Real, 1);
    let mut vm = Vmm::start(config).unwrap();
    assert_eq!(wait(&mut vm), ExitReason::Reset);
    assert_eq!(ExitReason::Reset.exit_code(), 2);
}

#[test]
fn stop_kicks_spinning_vcpus() {
    if !kvm_or_skip() {
        return;
    }
    // jmp $ on two vCPUs: only a signal gets them out of KVM_RUN.
    let (config, _) = raw(&[0xeb, 0xfe], CpuMode::Real, 2);
    let mut vm = Vmm::start(config).unwrap();
    assert!(vm.wait_timeout(Duration::from_millis(100)).is_none());
    let t = Instant::now();
    assert_eq!(vm.stop(), ExitReason::Stopped);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn irqchip_guest_halted_with_interrupts_off_ends_as_halted() {
    if !kvm_or_skip() {
        return;
    }
    // mov dx,0x3f8; mov al,'H'; out dx,al; cli; hlt; jmp (back to hlt)
    let code = [0xba, 0xf8, 0x03, 0xb0, b'H', 0xee, 0xfa, 0xf4, 0xeb, 0xfd];
    let (config, out) = raw_irqchip(&code, CpuMode::Real, 1);
    let t = Instant::now();
    let mut vm = Vmm::start(config).unwrap();
    assert_eq!(wait(&mut vm), ExitReason::Halted);
    assert_eq!(ExitReason::Halted.exit_code(), 0);
    eprintln!("halt noticed after {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(&*out.lock().unwrap(), b"H");
}

#[test]
fn irqchip_long_mode_bsp_halted_and_ap_never_started_end_as_halted() {
    if !kvm_or_skip() {
        return;
    }
    // cli; hlt; jmp (back to hlt). vCPU 1 is an AP that waits for INIT/SIPI forever.
    let (config, _) = raw_irqchip(&[0xfa, 0xf4, 0xeb, 0xfd], CpuMode::Long, 2);
    let t = Instant::now();
    let mut vm = Vmm::start(config).unwrap();
    assert_eq!(wait(&mut vm), ExitReason::Halted);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn irqchip_guest_idle_with_interrupts_on_is_not_halted() {
    if !kvm_or_skip() {
        return;
    }
    // sti; hlt; jmp (back to sti): idle, waiting for an interrupt that never comes.
    let (config, _) = raw_irqchip(&[0xfb, 0xf4, 0xeb, 0xfc], CpuMode::Real, 1);
    let mut vm = Vmm::start(config).unwrap();
    assert_eq!(vm.wait_timeout(Duration::from_secs(3)), None);
    assert_eq!(vm.stop(), ExitReason::Stopped);
}

#[test]
fn irqchip_guest_i8042_reset_still_resets() {
    if !kvm_or_skip() {
        return;
    }
    // mov al,0xfe; out 0x64,al; cli; hlt
    let (config, _) = raw_irqchip(&[0xb0, 0xfe, 0xe6, 0x64, 0xfa, 0xf4], CpuMode::Real, 1);
    let mut vm = Vmm::start(config).unwrap();
    assert_eq!(wait(&mut vm), ExitReason::Reset);
}

#[test]
fn start_errors_keep_their_source() {
    if !kvm_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinux");
    // ELF magic passes validation; linux-loader then rejects the truncated header.
    std::fs::write(&kernel, b"\x7fELF\x02\x01\x01\x00").unwrap();
    let config = VmConfig {
        vcpus: 1,
        memory_mib: 64,
        boot: BootSource::Kernel {
            kernel,
            initrd: None,
            cmdline: "console=ttyS0".into(),
        },
        vsock: None,
        block_devices: vec![],
        serial: SerialOutput::Sink,
        seccomp: true,
    };
    let e = Vmm::start(config)
        .err()
        .expect("a truncated ELF does not load");
    assert!(
        matches!(e, StartError::Kernel(KernelError::Load(..))),
        "{e:?}"
    );
    let source = std::error::Error::source(&e).expect("the loader's error is kept");
    assert!(
        source
            .downcast_ref::<linux_loader::loader::Error>()
            .is_some(),
        "{source:?}"
    );
}
