//! Register state for entering a guest: real mode, 32-bit protected mode (PVH) or 64-bit long
//! mode with identity-mapped page tables. Follows Firecracker's `arch::x86_64::regs`.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs, Msrs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use super::gdt::{
    gdt_entry, kvm_segment_from_gdt, CODE32_FLAGS, CODE64_FLAGS, DATA_FLAGS, TSS_FLAGS,
};
use crate::memory::{
    BOOT_GDT_START, BOOT_IDT_START, BOOT_STACK_POINTER, PDE_START, PDPTE_START, PML4_START,
};

const X86_CR0_PE: u64 = 0x1;
const X86_CR0_ET: u64 = 0x10;
const X86_CR0_PG: u64 = 0x8000_0000;
const X86_CR4_PAE: u64 = 0x20;
const EFER_LME: u64 = 0x100;
const EFER_LMA: u64 = 0x400;

/// Errors while programming vCPU registers.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// A KVM register ioctl failed.
    #[error("{0} failed")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// Writing a boot structure into guest memory failed.
    #[error("writing {0} to guest memory")]
    Memory(&'static str, #[source] vm_memory::GuestMemoryError),
}

/// The CPU mode the vCPU starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    /// 16-bit real mode, flat CS = 0.
    Real,
    /// 32-bit protected mode, paging off (PVH entry).
    Protected32,
    /// 64-bit long mode, 4 GiB identity mapped.
    Long64,
}

/// General-purpose register values at entry.
#[derive(Clone, Copy, Debug, Default)]
pub struct EntryRegs {
    /// Instruction pointer.
    pub rip: u64,
    /// Stack pointer (and frame pointer).
    pub rsp: u64,
    /// `rsi`: boot_params for the Linux 64-bit protocol.
    pub rsi: u64,
    /// `rbx`: hvm_start_info for PVH.
    pub rbx: u64,
    /// `rdi`: vCPU index for raw images.
    pub rdi: u64,
}

/// x87/SSE defaults (FCW 0x37f, MXCSR 0x1f80).
pub fn setup_fpu(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu)
        .map_err(|e| RegsError::Kvm("KVM_SET_FPU", e))
}

/// General-purpose registers.
pub fn setup_regs(vcpu: &VcpuFd, entry: EntryRegs) -> Result<(), RegsError> {
    let regs = kvm_regs {
        rflags: 0x2,
        rip: entry.rip,
        rsp: entry.rsp,
        rbp: entry.rsp,
        rsi: entry.rsi,
        rbx: entry.rbx,
        rdi: entry.rdi,
        ..Default::default()
    };
    vcpu.set_regs(&regs)
        .map_err(|e| RegsError::Kvm("KVM_SET_REGS", e))
}

/// Builds identity-mapped page tables for the first 4 GiB (2 MiB pages).
fn setup_page_tables(mem: &GuestMemoryMmap) -> Result<(), RegsError> {
    let w = |val: u64, addr: u64| {
        mem.write_obj(val, GuestAddress(addr))
            .map_err(|e| RegsError::Memory("page tables", e))
    };
    w(PDPTE_START | 0x03, PML4_START)?;
    for pd in 0..4u64 {
        let pd_addr = PDE_START + pd * 0x1000;
        w(pd_addr | 0x03, PDPTE_START + pd * 8)?;
        for i in 0..512u64 {
            w(((pd * 512 + i) << 21) | 0x83, pd_addr + i * 8)?;
        }
    }
    Ok(())
}

/// Writes the GDT and an empty IDT, then programs segments, control registers and EFER.
pub fn setup_sregs(mem: &GuestMemoryMmap, vcpu: &VcpuFd, mode: EntryMode) -> Result<(), RegsError> {
    let mut sregs: kvm_sregs = vcpu
        .get_sregs()
        .map_err(|e| RegsError::Kvm("KVM_GET_SREGS", e))?;
    match mode {
        EntryMode::Real => {
            sregs.cs.base = 0;
            sregs.cs.selector = 0;
            for seg in [
                &mut sregs.ds,
                &mut sregs.es,
                &mut sregs.fs,
                &mut sregs.gs,
                &mut sregs.ss,
            ] {
                seg.base = 0;
                seg.selector = 0;
            }
        }
        EntryMode::Protected32 | EntryMode::Long64 => {
            let code = if mode == EntryMode::Long64 {
                CODE64_FLAGS
            } else {
                CODE32_FLAGS
            };
            let gdt = [
                gdt_entry(0, 0, 0),
                gdt_entry(code, 0, 0xfffff),
                gdt_entry(DATA_FLAGS, 0, 0xfffff),
                gdt_entry(TSS_FLAGS, 0, 0xfffff),
            ];
            for (i, entry) in gdt.iter().enumerate() {
                let addr = GuestAddress(BOOT_GDT_START).unchecked_add(i as u64 * 8);
                mem.write_obj(*entry, addr)
                    .map_err(|e| RegsError::Memory("GDT", e))?;
            }
            mem.write_obj(0u64, GuestAddress(BOOT_IDT_START))
                .map_err(|e| RegsError::Memory("IDT", e))?;
            let data = kvm_segment_from_gdt(gdt[2], 2);
            sregs.gdt.base = BOOT_GDT_START;
            sregs.gdt.limit = (gdt.len() * 8 - 1) as u16;
            sregs.idt.base = BOOT_IDT_START;
            sregs.idt.limit = 7;
            sregs.cs = kvm_segment_from_gdt(gdt[1], 1);
            sregs.ds = data;
            sregs.es = data;
            sregs.fs = data;
            sregs.gs = data;
            sregs.ss = data;
            sregs.tr = kvm_segment_from_gdt(gdt[3], 3);
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
            if mode == EntryMode::Long64 {
                setup_page_tables(mem)?;
                sregs.cr3 = PML4_START;
                sregs.cr4 |= X86_CR4_PAE;
                sregs.cr0 |= X86_CR0_PG;
                sregs.efer |= EFER_LME | EFER_LMA;
            }
        }
    }
    vcpu.set_sregs(&sregs)
        .map_err(|e| RegsError::Kvm("KVM_SET_SREGS", e))
}

/// Boot MSRs (as Firecracker sets them): SYSENTER/SYSCALL MSRs cleared, TSC 0, fast strings,
/// MTRRs enabled with write-back default.
pub fn setup_msrs(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let entries: [(u32, u64); 11] = [
        (0x174, 0),             // IA32_SYSENTER_CS
        (0x175, 0),             // IA32_SYSENTER_ESP
        (0x176, 0),             // IA32_SYSENTER_EIP
        (0xc000_0081, 0),       // STAR
        (0xc000_0083, 0),       // CSTAR
        (0xc000_0102, 0),       // KERNEL_GS_BASE
        (0xc000_0084, 0),       // SYSCALL_MASK
        (0xc000_0082, 0),       // LSTAR
        (0x10, 0),              // IA32_TSC
        (0x1a0, 1),             // IA32_MISC_ENABLE: fast strings
        (0x2ff, (1 << 11) | 6), // MTRRdefType: enabled, write-back
    ];
    let msrs: Vec<kvm_bindings::kvm_msr_entry> = entries
        .iter()
        .map(|&(index, data)| kvm_bindings::kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let msrs = Msrs::from_entries(&msrs)
        .map_err(|_| RegsError::Kvm("building MSR list", kvm_ioctls::Error::new(libc::EINVAL)))?;
    let written = vcpu
        .set_msrs(&msrs)
        .map_err(|e| RegsError::Kvm("KVM_SET_MSRS", e))?;
    if written != entries.len() {
        tracing::warn!(
            written,
            wanted = entries.len(),
            "not all boot MSRs were accepted"
        );
    }
    Ok(())
}

/// Local APIC: LINT0 as ExtINT (the PIC), LINT1 as NMI.
pub fn setup_lapic(vcpu: &VcpuFd) -> Result<(), RegsError> {
    const APIC_LVT0: usize = 0x350;
    const APIC_LVT1: usize = 0x360;
    const APIC_MODE_EXTINT: u32 = 0x7;
    const APIC_MODE_NMI: u32 = 0x4;
    let mut lapic = vcpu
        .get_lapic()
        .map_err(|e| RegsError::Kvm("KVM_GET_LAPIC", e))?;
    for (reg, mode) in [(APIC_LVT0, APIC_MODE_EXTINT), (APIC_LVT1, APIC_MODE_NMI)] {
        let bytes: [u8; 4] = std::array::from_fn(|i| lapic.regs[reg + i] as u8);
        let val = u32::from_le_bytes(bytes);
        let val = (val & !0x700) | (mode << 8);
        for (i, b) in val.to_le_bytes().iter().enumerate() {
            lapic.regs[reg + i] = *b as _;
        }
    }
    vcpu.set_lapic(&lapic)
        .map_err(|e| RegsError::Kvm("KVM_SET_LAPIC", e))
}

/// The initial stack pointer for boot entry.
pub const fn boot_stack() -> u64 {
    BOOT_STACK_POINTER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tables_identity_map_4g() {
        let mem = crate::memory::create_guest_memory(2).unwrap();
        setup_page_tables(&mem).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_START)).unwrap();
        assert_eq!(pml4, PDPTE_START | 3);
        let pdpt3: u64 = mem.read_obj(GuestAddress(PDPTE_START + 24)).unwrap();
        assert_eq!(pdpt3, (PDE_START + 0x3000) | 3);
        // 0xd000_0000 = PD 3, entry 128.
        let pde: u64 = mem
            .read_obj(GuestAddress(PDE_START + 0x3000 + 128 * 8))
            .unwrap();
        assert_eq!(pde, 0xd000_0000 | 0x83);
    }
}
