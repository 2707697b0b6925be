//! Guest physical memory layout (x86-64) and its allocation with `vm-memory`.
//!
//! ```text
//! 0x0000_0500  GDT (4 entries), IDT right after it
//! 0x0000_1000  raw test images are loaded at or above this
//! 0x0000_6000  PVH hvm_start_info, 0x6040 module list, 0x7000 PVH memory map
//! 0x0000_7000  Linux zero page (boot_params) for bzImage/64-bit entry
//! 0x0000_8ff0  boot stack
//! 0x0000_9000  PML4, 0xa000 PDPT, 0xb000..0xf000 four page directories (4 GiB identity map)
//! 0x0002_0000  kernel command line
//! 0x0009_fc00  EBDA: MP table
//! 0x0010_0000  kernel (HIMEM_START)
//! 0xd000_0000  32-bit MMIO gap (768 MiB): virtio-mmio devices, IOAPIC, LAPIC
//! 0x1_0000_0000 RAM above the gap
//! ```

use vm_memory::{GuestAddress, GuestMemoryMmap};

/// GDT location.
pub const BOOT_GDT_START: u64 = 0x500;
/// IDT location (empty IDT).
pub const BOOT_IDT_START: u64 = 0x520;
/// PVH start info.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH module list (initrd).
pub const PVH_MODLIST_START: u64 = 0x6040;
/// PVH memory map.
pub const PVH_MEMMAP_START: u64 = 0x7000;
/// Linux boot_params ("zero page").
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Top-level page table.
pub const PML4_START: u64 = 0x9000;
/// Page-directory-pointer table.
pub const PDPTE_START: u64 = 0xa000;
/// First of four page directories.
pub const PDE_START: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Longest kernel command line we accept (Linux x86 `COMMAND_LINE_SIZE`).
pub const MAX_CMDLINE_LEN: usize = 2048;
/// Extended BIOS data area: where the MP table goes.
pub const EBDA_START: u64 = 0x9fc00;
/// Start of high memory: kernel load address.
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO gap.
pub const MMIO_GAP_START: u64 = 0xd000_0000;
/// End of the 32-bit MMIO gap (4 GiB).
pub const MMIO_GAP_END: u64 = 1 << 32;
/// First virtio-mmio device window; each device takes [`MMIO_DEVICE_SIZE`].
pub const VIRTIO_MMIO_START: u64 = MMIO_GAP_START;
/// Size of one virtio-mmio window.
pub const MMIO_DEVICE_SIZE: u64 = 0x1000;
/// First IRQ (GSI) for virtio-mmio devices.
pub const VIRTIO_IRQ_BASE: u32 = 5;
/// Most virtio-mmio devices: IRQs 5..=11 (12 is the i8042 AUX line, 14/15 IDE).
pub const MAX_MMIO_DEVICES: usize = 7;
/// IOAPIC base address.
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// Local APIC base address.
pub const APIC_START: u64 = 0xfee0_0000;
/// KVM's TSS (three pages) sits just below the BIOS area at the top of the gap.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;

/// Guest RAM ranges for `size` bytes, split around the MMIO gap.
pub fn ram_regions(size: u64) -> Vec<(GuestAddress, usize)> {
    if size <= MMIO_GAP_START {
        vec![(GuestAddress(0), size as usize)]
    } else {
        vec![
            (GuestAddress(0), MMIO_GAP_START as usize),
            (GuestAddress(MMIO_GAP_END), (size - MMIO_GAP_START) as usize),
        ]
    }
}

/// Allocates guest RAM (anonymous, `MAP_NORESERVE`: untouched pages cost nothing).
pub fn create_guest_memory(
    memory_mib: u32,
) -> Result<GuestMemoryMmap, vm_memory::mmap::FromRangesError> {
    let size = u64::from(memory_mib) << 20;
    GuestMemoryMmap::from_ranges(&ram_regions(size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryBackend;

    #[test]
    fn layout_avoids_the_gap() {
        assert_eq!(ram_regions(128 << 20), vec![(GuestAddress(0), 128 << 20)]);
        let big = ram_regions(4 << 30);
        assert_eq!(big.len(), 2);
        assert_eq!(big[0].1 as u64, MMIO_GAP_START);
        assert_eq!(big[1].0, GuestAddress(MMIO_GAP_END));
        assert_eq!(big[0].1 as u64 + big[1].1 as u64, 4 << 30);
    }

    #[test]
    fn guest_memory_allocates() {
        let mem = create_guest_memory(16).unwrap();
        assert_eq!(mem.num_regions(), 1);
        assert_eq!(mem.last_addr(), GuestAddress((16 << 20) - 1));
    }
}
