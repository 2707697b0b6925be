//! Kernel loading with `linux-loader`: ELF `vmlinux` (PVH entry preferred, else the 64-bit
//! Linux boot protocol) or bzImage; initrd; command line; boot parameters (e820 map or PVH
//! memory map).

use std::fs::File;
use std::path::Path;

use linux_loader::cmdline::Cmdline;
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::boot_params;
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::{load_cmdline, BzImage, Elf, KernelLoader};
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, ReadVolatile};

use crate::config::{detect_kernel_format, BootSource, KernelFormat, VmConfig};
use crate::memory::{
    CMDLINE_START, EBDA_START, HIMEM_START, MAX_CMDLINE_LEN, MMIO_DEVICE_SIZE, MMIO_GAP_END,
    MMIO_GAP_START, PVH_INFO_START, PVH_MEMMAP_START, PVH_MODLIST_START, ZERO_PAGE_START,
};

const E820_RAM: u32 = 1;
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT: u32 = 0x0100_0000;
/// Longest `virtio_mmio.device=4K@0x<addr>:<irq>` entry we append, with its leading space.
const MMIO_CMDLINE_ENTRY_LEN: usize = " virtio_mmio.device=4K@0xd0000000:15".len();

/// Errors loading the kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Opening or reading a file.
    #[error("{0}")]
    Io(String, #[source] std::io::Error),
    /// linux-loader rejected the image.
    #[error("loading kernel {0}")]
    Load(String, #[source] linux_loader::loader::Error),
    /// The initrd does not fit in guest memory.
    #[error("initrd {0} ({1} bytes) does not fit in guest memory")]
    InitrdTooBig(String, u64),
    /// The command line could not be built.
    #[error("kernel command line")]
    Cmdline(#[source] linux_loader::cmdline::Error),
    /// Writing boot parameters.
    #[error("writing boot parameters")]
    BootParams(#[source] linux_loader::configurator::Error),
    /// Writing the initrd.
    #[error("writing initrd")]
    Memory(#[source] vm_memory::GuestMemoryError),
    /// Not a kernel boot.
    #[error("not a kernel boot source")]
    NotKernel,
}

/// How the vCPUs enter the loaded kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelEntry {
    /// PVH: 32-bit protected mode at `addr`, `ebx` = hvm_start_info.
    Pvh(u64),
    /// Linux 64-bit boot protocol at `addr`, `rsi` = boot_params.
    Linux64(u64),
}

/// Bytes the VMM appends to the command line for this config's virtio-mmio devices.
pub fn cmdline_reserve(config: &VmConfig) -> usize {
    let devices = config.block_devices.len() + usize::from(config.vsock.is_some());
    devices * MMIO_CMDLINE_ENTRY_LEN + 1
}

/// Builds the full command line: the user's, then one `virtio_mmio.device=` per device.
pub fn build_cmdline(user: &str, mmio_devices: &[(u64, u32)]) -> Result<Cmdline, KernelError> {
    let mut cmdline = Cmdline::new(MAX_CMDLINE_LEN).map_err(KernelError::Cmdline)?;
    if !user.trim().is_empty() {
        cmdline
            .insert_str(user.trim())
            .map_err(KernelError::Cmdline)?;
    }
    for &(addr, irq) in mmio_devices {
        cmdline
            .add_virtio_mmio_device(MMIO_DEVICE_SIZE, GuestAddress(addr), irq, None)
            .map_err(KernelError::Cmdline)?;
    }
    Ok(cmdline)
}

/// RAM ranges (start, size) as the guest sees them in its memory map.
fn ram_map(mem: &GuestMemoryMmap) -> Vec<(u64, u64)> {
    let end = mem.last_addr().raw_value() + 1;
    let mut map = vec![(0, EBDA_START)];
    let low_end = end.min(MMIO_GAP_START);
    if low_end > HIMEM_START {
        map.push((HIMEM_START, low_end - HIMEM_START));
    }
    if end > MMIO_GAP_END {
        map.push((MMIO_GAP_END, end - MMIO_GAP_END));
    }
    map
}

fn open(path: &Path) -> Result<File, KernelError> {
    File::open(path).map_err(|e| KernelError::Io(path.display().to_string(), e))
}

/// Loads the initrd at the top of low memory; returns (address, size).
fn load_initrd(mem: &GuestMemoryMmap, path: &Path) -> Result<(u64, u64), KernelError> {
    let mut file = open(path)?;
    let size = file
        .metadata()
        .map_err(|e| KernelError::Io(path.display().to_string(), e))?
        .len();
    let low_end = (mem.last_addr().raw_value() + 1).min(MMIO_GAP_START);
    let addr = low_end
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|&a| a >= HIMEM_START)
        .ok_or_else(|| KernelError::InitrdTooBig(path.display().to_string(), size))?;
    let mut slice = mem
        .get_slice(GuestAddress(addr), size as usize)
        .map_err(KernelError::Memory)?;
    file.read_exact_volatile(&mut slice)
        .map_err(|e| KernelError::Io(path.display().to_string(), std::io::Error::other(e)))?;
    Ok((addr, size))
}

/// Loads kernel, initrd and command line and writes the boot parameters.
pub fn load_kernel(
    mem: &GuestMemoryMmap,
    boot: &BootSource,
    mmio_devices: &[(u64, u32)],
) -> Result<KernelEntry, KernelError> {
    let BootSource::Kernel {
        kernel,
        initrd,
        cmdline,
    } = boot
    else {
        return Err(KernelError::NotKernel);
    };
    let name = kernel.display().to_string();
    let format = detect_kernel_format(kernel)
        .map_err(|e| KernelError::Io(name.clone(), std::io::Error::other(e.reason)))?;
    let mut image = open(kernel)?;
    let loaded = match format {
        KernelFormat::Elf => Elf::load(mem, None, &mut image, Some(GuestAddress(HIMEM_START))),
        KernelFormat::BzImage => {
            BzImage::load(mem, None, &mut image, Some(GuestAddress(HIMEM_START)))
        }
    }
    .map_err(|e| KernelError::Load(name.clone(), e))?;

    let cmdline = build_cmdline(cmdline, mmio_devices)?;
    load_cmdline(mem, GuestAddress(CMDLINE_START), &cmdline)
        .map_err(|e| KernelError::Load(name.clone(), e))?;
    let cmdline_len = cmdline
        .as_cstring()
        .map_err(KernelError::Cmdline)?
        .as_bytes()
        .len();
    let initrd = match initrd {
        Some(p) => Some(load_initrd(mem, p)?),
        None => None,
    };

    if let PvhBootCapability::PvhEntryPresent(entry) = loaded.pvh_boot_cap {
        write_pvh_params(mem, initrd)?;
        return Ok(KernelEntry::Pvh(entry.raw_value()));
    }
    write_linux_params(mem, loaded.setup_header, cmdline_len, initrd)?;
    let entry = match format {
        // The 64-bit entry (startup_64) is 0x200 past the protected-mode code start.
        KernelFormat::BzImage => loaded.kernel_load.raw_value() + 0x200,
        KernelFormat::Elf => loaded.kernel_load.raw_value(),
    };
    Ok(KernelEntry::Linux64(entry))
}

fn write_pvh_params(mem: &GuestMemoryMmap, initrd: Option<(u64, u64)>) -> Result<(), KernelError> {
    let memmap: Vec<hvm_memmap_table_entry> = ram_map(mem)
        .into_iter()
        .map(|(addr, size)| hvm_memmap_table_entry {
            addr,
            size,
            type_: E820_RAM,
            reserved: 0,
        })
        .collect();
    let mut start_info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE_START,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: memmap.len() as u32,
        ..Default::default()
    };
    let modules: Vec<hvm_modlist_entry> = initrd
        .map(|(paddr, size)| hvm_modlist_entry {
            paddr,
            size,
            ..Default::default()
        })
        .into_iter()
        .collect();
    if !modules.is_empty() {
        start_info.nr_modules = modules.len() as u32;
        start_info.modlist_paddr = PVH_MODLIST_START;
    }
    let mut params = BootParams::new(&start_info, GuestAddress(PVH_INFO_START));
    params.set_sections(&memmap, GuestAddress(PVH_MEMMAP_START));
    if !modules.is_empty() {
        params.set_modules(&modules, GuestAddress(PVH_MODLIST_START));
    }
    PvhBootConfigurator::write_bootparams(&params, mem).map_err(KernelError::BootParams)
}

fn write_linux_params(
    mem: &GuestMemoryMmap,
    setup_header: Option<linux_loader::loader::bootparam::setup_header>,
    cmdline_len: usize,
    initrd: Option<(u64, u64)>,
) -> Result<(), KernelError> {
    let mut params = boot_params::default();
    if let Some(hdr) = setup_header {
        params.hdr = hdr;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if let Some((addr, size)) = initrd {
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = size as u32;
    }
    for (i, (addr, size)) in ram_map(mem).into_iter().enumerate() {
        params.e820_table[i].addr = addr;
        params.e820_table[i].size = size;
        params.e820_table[i].r#type = E820_RAM;
        params.e820_entries = (i + 1) as u8;
    }
    LinuxBootConfigurator::write_bootparams(
        &BootParams::new(&params, GuestAddress(ZERO_PAGE_START)),
        mem,
    )
    .map_err(KernelError::BootParams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn cmdline_announces_mmio_devices() {
        let c = build_cmdline("console=ttyS0", &[(0xd000_0000, 5), (0xd000_1000, 6)]).unwrap();
        let s = c.as_cstring().unwrap().into_string().unwrap();
        assert_eq!(
            s,
            "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6"
        );
    }

    #[test]
    fn e820_skips_the_legacy_hole() {
        let mem = crate::memory::create_guest_memory(64).unwrap();
        assert_eq!(
            ram_map(&mem),
            vec![(0, EBDA_START), (HIMEM_START, (64 << 20) - HIMEM_START)]
        );
    }

    #[test]
    fn bzimage_header_is_rejected_without_payload() {
        // A file with a bzImage signature but garbage contents fails in linux-loader, not with
        // a panic.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bz");
        let mut bytes = vec![0u8; 0x1000];
        bytes[0x202..0x206].copy_from_slice(b"HdrS");
        std::fs::write(&path, bytes).unwrap();
        let mem = crate::memory::create_guest_memory(32).unwrap();
        let boot = BootSource::Kernel {
            kernel: path,
            initrd: None,
            cmdline: String::new(),
        };
        assert!(matches!(
            load_kernel(&mem, &boot, &[]),
            Err(KernelError::Load(..))
        ));
        let _: u8 = mem.read_obj(GuestAddress(0)).unwrap();
    }
}
