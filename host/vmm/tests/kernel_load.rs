//! Kernel loading with a real distribution kernel (Debian's `linux-image-amd64`, if installed):
//! bzImage through the 64-bit boot protocol, the ELF vmlinux inside it through PVH, and a
//! start of the whole VM (irqchip, PIT, MP table, CPUID, MSRs, LAPIC) that must end cleanly
//! on any host.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vm_memory::{Bytes, GuestAddress};
use vmrun_vmm::kernel::{load_kernel, KernelEntry};
use vmrun_vmm::memory::{create_guest_memory, CMDLINE_START, PVH_INFO_START, ZERO_PAGE_START};
use vmrun_vmm::{BootSource, SerialOutput, VmConfig, Vmm};

fn distro_kernel() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    found.sort();
    if let Some(k) = found.pop() {
        return Some(k);
    }
    // No distro kernel installed here: the nested KVM host's outer kernel is Debian's
    // linux-image-amd64 bzImage, fetched into a cache by `tests/kvmhost/outer-kernel.sh`.
    match vmrun_kvmhost::debian_kernel() {
        Ok(k) => Some(k),
        Err(skip) => {
            vmrun_test_skip::report(format_args!(
                "no /boot/vmlinuz-* and no Debian kernel in the cache: {skip}"
            ));
            None
        }
    }
}

fn boot(kernel: PathBuf) -> BootSource {
    BootSource::Kernel {
        kernel,
        initrd: None,
        cmdline: "console=ttyS0 reboot=k panic=-1".into(),
    }
}

#[test]
fn bzimage_loads_with_boot_params() {
    let Some(kernel) = distro_kernel() else {
        return;
    };
    let mem = create_guest_memory(256).unwrap();
    let entry = load_kernel(&mem, &boot(kernel), &[(0xd000_0000, 5)]).unwrap();
    assert_eq!(entry, KernelEntry::Linux64(0x10_0200));
    let zp = ZERO_PAGE_START;
    let magic: u32 = mem.read_obj(GuestAddress(zp + 0x202)).unwrap();
    assert_eq!(magic, 0x5372_6448, "HdrS");
    let cmd_ptr: u32 = mem.read_obj(GuestAddress(zp + 0x228)).unwrap();
    assert_eq!(u64::from(cmd_ptr), CMDLINE_START);
    let e820_entries: u8 = mem.read_obj(GuestAddress(zp + 0x1e8)).unwrap();
    assert_eq!(e820_entries, 2);
    let mut cmdline = vec![0u8; 80];
    mem.read_slice(&mut cmdline, GuestAddress(CMDLINE_START))
        .unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(
        cmdline.starts_with("console=ttyS0 reboot=k panic=-1 virtio_mmio.device=4K@0xd0000000:5"),
        "{cmdline}"
    );
}

/// The ELF vmlinux inside a bzImage (xz payload), as the kernel's `extract-vmlinux` does.
fn extract_vmlinux(bz: &PathBuf, out: &std::path::Path) -> Option<PathBuf> {
    let data = std::fs::read(bz).ok()?;
    let off = data.windows(6).position(|w| w == b"\xfd7zXZ\x00")?;
    let xz = out.join("payload.xz");
    std::fs::write(&xz, &data[off..]).ok()?;
    let o = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .arg(&xz)
        .output()
        .ok()?;
    if !o.stdout.starts_with(b"\x7fELF") {
        return None;
    }
    let vmlinux = out.join("vmlinux");
    std::fs::write(&vmlinux, o.stdout).ok()?;
    Some(vmlinux)
}

#[test]
fn elf_vmlinux_uses_the_pvh_entry() {
    let Some(kernel) = distro_kernel() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(vmlinux) = extract_vmlinux(&kernel, dir.path()) else {
        vmrun_test_skip::report(format_args!(
            "cannot extract an xz vmlinux from {}",
            kernel.display()
        ));
        return;
    };
    let mem = create_guest_memory(256).unwrap();
    let entry = load_kernel(&mem, &boot(vmlinux), &[]).unwrap();
    let KernelEntry::Pvh(addr) = entry else {
        panic!("expected the PVH entry, got {entry:?}");
    };
    assert!((0x100_0000..0x400_0000).contains(&addr), "{addr:#x}");
    let magic: u32 = mem.read_obj(GuestAddress(PVH_INFO_START)).unwrap();
    assert_eq!(magic, 0x336e_c578);
    let entries: u32 = mem.read_obj(GuestAddress(PVH_INFO_START + 0x30)).unwrap();
    assert_eq!(entries, 2, "memmap entries");
}

#[test]
fn kernel_vm_starts_and_stops_cleanly() {
    let Some(kernel) = distro_kernel() else {
        return;
    };
    if let Err(e) = vmrun_vmm::pvm::kvm_usable() {
        vmrun_test_skip::report(format_args!("{e}"));
        return;
    }
    let serial = Arc::new(Mutex::new(Vec::new()));
    let mut vm = Vmm::start(VmConfig {
        vcpus: 2,
        memory_mib: 128,
        boot: boot(kernel),
        vsock: None,
        block_devices: vec![],
        serial: SerialOutput::Buffer(serial.clone()),
        seccomp: true,
    })
    .expect("every VM-setup ioctl succeeds");
    // On hardware KVM this kernel boots (and panics for lack of a root fs, then reboots:
    // panic=-1); on PVM it stops with an emulation failure. Either way the VM must end or stop.
    let reason = vm
        .wait_timeout(Duration::from_secs(2))
        .unwrap_or_else(|| vm.stop());
    eprintln!(
        "kernel VM ended: {reason:?}; {} bytes of serial output",
        serial.lock().unwrap().len()
    );
}
