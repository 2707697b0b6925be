//! CPUID for each vCPU, filtered from `KVM_GET_SUPPORTED_CPUID`: hypervisor bit, APIC IDs,
//! topology matching the vCPU count, no PMU.

use kvm_bindings::CpuId;

const HYPERVISOR_BIT: u32 = 1 << 31;
const HTT_BIT: u32 = 1 << 28;

/// Adjusts `cpuid` (the host-supported set) for vCPU `index` of `count`.
pub fn filter_cpuid(cpuid: &mut CpuId, index: u8, count: u8) {
    let apic_id = u32::from(index);
    let count32 = u32::from(count);
    // Bits needed to number `count` logical CPUs (x2APIC ID shift for the core level).
    let shift = 32 - (count32.max(1) - 1).leading_zeros();
    for entry in cpuid.as_mut_slice().iter_mut() {
        match entry.function {
            0x1 => {
                entry.ecx |= HYPERVISOR_BIT;
                entry.ebx = (apic_id << 24) | (count32 << 16) | (8 << 8) | (entry.ebx & 0xff);
                if count > 1 {
                    entry.edx |= HTT_BIT;
                } else {
                    entry.edx &= !HTT_BIT;
                }
            }
            0x4 => {
                // Cores per package - 1 in bits 31:26; threads sharing the cache in 25:14.
                entry.eax &= 0x3fff;
                entry.eax |= (count32.saturating_sub(1) & 0x3f) << 26;
                let cache_level = (entry.eax >> 5) & 0x7;
                if cache_level >= 3 {
                    entry.eax |= (count32.saturating_sub(1) & 0xfff) << 14;
                }
            }
            0xa => {
                // No PMU.
                entry.eax = 0;
                entry.ebx = 0;
                entry.ecx = 0;
                entry.edx = 0;
            }
            0xb | 0x1f => {
                entry.edx = apic_id;
                match entry.index {
                    0 => {
                        entry.eax = 0;
                        entry.ebx = 1;
                        entry.ecx = (1 << 8) | entry.index;
                    }
                    1 => {
                        entry.eax = shift;
                        entry.ebx = count32;
                        entry.ecx = (2 << 8) | entry.index;
                    }
                    _ => {
                        entry.eax = 0;
                        entry.ebx = 0;
                        entry.ecx = entry.index;
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    #[test]
    fn sets_hypervisor_bit_and_apic_id() {
        let mut cpuid = CpuId::from_entries(&[
            kvm_cpuid_entry2 {
                function: 1,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xb,
                index: 1,
                ..Default::default()
            },
        ])
        .unwrap();
        filter_cpuid(&mut cpuid, 3, 4);
        let e = cpuid.as_slice();
        assert_ne!(e[0].ecx & HYPERVISOR_BIT, 0);
        assert_eq!(e[0].ebx >> 24, 3);
        assert_eq!((e[0].ebx >> 16) & 0xff, 4);
        assert_eq!(e[1].eax, 2);
        assert_eq!(e[1].ebx, 4);
        assert_eq!(e[1].edx, 3);
    }
}
