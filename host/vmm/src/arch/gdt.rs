//! Global descriptor table entries and their `kvm_segment` form.

use kvm_bindings::kvm_segment;

/// 64-bit code segment flags (L=1, P=1, S=1, type=execute/read, accessed).
pub const CODE64_FLAGS: u16 = 0xa09b;
/// 32-bit code segment flags (D=1, G=1).
pub const CODE32_FLAGS: u16 = 0xc09b;
/// Data segment flags (read/write, accessed, G=1, B=1).
pub const DATA_FLAGS: u16 = 0xc093;
/// 64-bit TSS flags (busy).
pub const TSS_FLAGS: u16 = 0x808b;

/// Builds a GDT entry from flags, base and limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    let flags = flags as u64;
    ((base & 0xff00_0000) << (56 - 24))
        | ((flags & 0x0000_f0ff) << 40)
        | ((limit & 0x000f_0000) << (48 - 16))
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
}

fn base(entry: u64) -> u64 {
    ((entry & 0xff00_0000_0000_0000) >> 32)
        | ((entry & 0x0000_00ff_0000_0000) >> 16)
        | ((entry & 0x0000_0000_ffff_0000) >> 16)
}

fn limit(entry: u64) -> u32 {
    let limit = (((entry & 0x000f_0000_0000_0000) >> 32) | (entry & 0xffff)) as u32;
    if bit(entry, 55) == 0 {
        limit
    } else {
        (limit << 12) | 0xfff
    }
}

fn bit(entry: u64, n: u32) -> u8 {
    ((entry >> n) & 1) as u8
}

/// The `kvm_segment` a selector for GDT slot `index` loads.
pub fn kvm_segment_from_gdt(entry: u64, index: u8) -> kvm_segment {
    let present = bit(entry, 47);
    kvm_segment {
        base: base(entry),
        limit: limit(entry),
        selector: u16::from(index) * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present,
        dpl: ((entry >> 45) & 0x3) as u8,
        db: bit(entry, 54),
        s: bit(entry, 44),
        l: bit(entry, 53),
        g: bit(entry, 55),
        avl: bit(entry, 52),
        padding: 0,
        unusable: u8::from(present == 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code64_segment_round_trips() {
        let seg = kvm_segment_from_gdt(gdt_entry(CODE64_FLAGS, 0, 0xfffff), 1);
        assert_eq!(seg.selector, 8);
        assert_eq!(seg.l, 1);
        assert_eq!(seg.db, 0);
        assert_eq!(seg.present, 1);
        assert_eq!(seg.type_, 0xb);
        assert_eq!(seg.limit, 0xffff_ffff);
        assert_eq!(seg.base, 0);
        let data = kvm_segment_from_gdt(gdt_entry(DATA_FLAGS, 0x1234_5678, 0xfffff), 2);
        assert_eq!(data.base, 0x1234_5678);
        assert_eq!(data.db, 1);
        assert_eq!(data.type_, 3);
    }
}
