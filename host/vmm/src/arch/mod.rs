//! x86-64 CPU setup: segments and page tables, registers, CPUID, MSRs, LAPIC, MP table.

pub mod cpuid;
pub mod gdt;
pub mod mptable;
pub mod regs;
