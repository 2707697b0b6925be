//! Capability sets: the five OCI sets turned into bitmasks in the parent, then applied in the
//! child with raw `prctl`/`capset` calls that allocate nothing.
//!
//! Order matters to the kernel, and runc's order is the one that works:
//! 1. raise the effective set to the permitted set (so CAP_SETPCAP is usable),
//! 2. drop from the bounding set everything not listed,
//! 3. set effective, permitted and inheritable in one `capset`,
//! 4. clear the ambient set and raise the listed ambient capabilities.
//!
//! When the child switches to a non-root user, capabilities survive `setresuid` only with
//! `PR_SET_KEEPCAPS` (see [`set_keep_caps`]); call it before `setresuid` and [`apply`] after.

use std::str::FromStr;

use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Capability as OciCapability, LinuxCapabilities};

use crate::seccomp::canonical_cap;

/// Every capability the kernel headers of our targets know, in their numeric order.
pub const ALL: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities Docker grants a container by default.
pub const DOCKER_DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";

/// An error building or applying capability sets.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// A capability name that is not one.
    #[error("unknown capability {0:?}")]
    Unknown(String),
    /// A system call failed; `op` names it and the set involved.
    #[error("{op} failed: {errno}")]
    Syscall {
        /// The call, such as "prctl(PR_CAPBSET_DROP)" or "capset(effective, permitted, inheritable)".
        op: &'static str,
        /// The kernel's answer.
        errno: Errno,
    },
}

/// The five sets, resolved against the running kernel, ready to apply without allocating.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapabilitySets {
    /// Bounding-set indices to drop (every capability the kernel knows that is not kept).
    bounding_drop: Vec<u8>,
    effective: u64,
    permitted: u64,
    inheritable: u64,
    ambient: Vec<u8>,
}

impl CapabilitySets {
    /// Resolves the OCI sets. An absent set is empty (as in runc). Capabilities the running
    /// kernel does not know are skipped with a warning.
    pub fn from_oci(caps: &LinuxCapabilities) -> Result<Self, CapabilityError> {
        let last = last_cap();
        let mask = |set: &Option<Capabilities>| -> Result<u64, CapabilityError> {
            let mut bits = 0u64;
            for cap in set.iter().flatten() {
                let index = oci_to_index(cap)?;
                if index > last {
                    tracing::warn!(capability = %cap, "capability unknown to this kernel, skipped");
                    continue;
                }
                bits |= 1u64 << index;
            }
            Ok(bits)
        };
        let bounding = mask(caps.bounding())?;
        let ambient = mask(caps.ambient())?;
        Ok(CapabilitySets {
            bounding_drop: (0..=last).filter(|i| bounding & (1u64 << i) == 0).collect(),
            effective: mask(caps.effective())?,
            permitted: mask(caps.permitted())?,
            inheritable: mask(caps.inheritable())?,
            ambient: (0..=last).filter(|i| ambient & (1u64 << i) != 0).collect(),
        })
    }

    /// Applies the sets to the calling thread. Allocates nothing (errors included).
    pub fn apply(&self) -> Result<(), CapabilityError> {
        let (mut header, mut data) = capget()?;
        // 1. Effective = permitted, so that CAP_SETPCAP (if permitted) is in force.
        for d in data.iter_mut() {
            d.effective = d.permitted;
        }
        capset(&mut header, &data, "capset(effective = permitted)")?;
        // 2. Bounding set.
        for &index in &self.bounding_drop {
            // SAFETY: prctl(PR_CAPBSET_DROP, index) takes no pointers.
            let rc =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(index), 0, 0, 0) };
            if rc != 0 {
                let errno = Errno::last();
                // EINVAL: the kernel does not know this capability; nothing to drop.
                if errno != Errno::EINVAL {
                    return Err(CapabilityError::Syscall {
                        op: "prctl(PR_CAPBSET_DROP)",
                        errno,
                    });
                }
            }
        }
        // 3. Effective, permitted, inheritable at once.
        let split = |bits: u64| [(bits & 0xffff_ffff) as u32, (bits >> 32) as u32];
        let (e, p, i) = (
            split(self.effective),
            split(self.permitted),
            split(self.inheritable),
        );
        for (n, d) in data.iter_mut().enumerate() {
            d.effective = e[n];
            d.permitted = p[n];
            d.inheritable = i[n];
        }
        capset(
            &mut header,
            &data,
            "capset(effective, permitted, inheritable)",
        )?;
        // 4. Ambient.
        // SAFETY: prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL) takes no pointers.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        if rc != 0 && !self.ambient.is_empty() {
            let errno = Errno::last();
            return Err(CapabilityError::Syscall {
                op: "prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
                errno,
            });
        }
        for &index in &self.ambient {
            // SAFETY: prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, index) takes no pointers.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    libc::c_ulong::from(index),
                    0,
                    0,
                )
            };
            if rc != 0 {
                let errno = Errno::last();
                return Err(CapabilityError::Syscall {
                    op: "prctl(PR_CAP_AMBIENT_RAISE)",
                    errno,
                });
            }
        }
        Ok(())
    }
}

/// Applies the five OCI capability sets to the calling thread (see the module docs for the
/// order). Resolves the sets first, which allocates; a child of a multi-threaded parent should
/// build [`CapabilitySets::from_oci`] before fork and call [`CapabilitySets::apply`] instead.
pub fn apply(caps: &LinuxCapabilities) -> Result<(), CapabilityError> {
    CapabilitySets::from_oci(caps)?.apply()
}

/// Keeps (or stops keeping) permitted capabilities across a switch from uid 0 to another uid.
pub fn set_keep_caps(keep: bool) -> Result<(), CapabilityError> {
    // SAFETY: prctl(PR_SET_KEEPCAPS, 0|1) takes no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(keep), 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(CapabilityError::Syscall {
            op: "prctl(PR_SET_KEEPCAPS)",
            errno: Errno::last(),
        })
    }
}

/// Parses capability names ("CAP_CHOWN", "chown") into the OCI type.
pub fn parse_capabilities(names: &[&str]) -> Result<Capabilities, CapabilityError> {
    names
        .iter()
        .map(|name| {
            let canonical = canonical_cap(name);
            let stripped = canonical.trim_start_matches("CAP_");
            OciCapability::from_str(stripped)
                .map_err(|_| CapabilityError::Unknown(name.to_string()))
        })
        .collect()
}

/// Docker's process capabilities for `names`: bounding, effective and permitted hold them;
/// inheritable and ambient are empty (moby since 20.10.14, CVE-2022-24769).
pub fn docker_capabilities(names: &[&str]) -> Result<LinuxCapabilities, CapabilityError> {
    let set = parse_capabilities(names)?;
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set))
        .set_inheritable(Some(Capabilities::new()))
        .set_ambient(Some(Capabilities::new()));
    Ok(caps)
}

/// The kernel index of an OCI capability, through the `caps` crate's table.
fn oci_to_index(cap: &OciCapability) -> Result<u8, CapabilityError> {
    let name = canonical_cap(&cap.to_string());
    caps::Capability::from_str(&name)
        .map(|c| c.index())
        .map_err(|_| CapabilityError::Unknown(name))
}

/// The highest capability index the running kernel knows.
fn last_cap() -> u8 {
    std::fs::read_to_string(CAP_LAST_CAP)
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .or_else(|| {
            caps::runtime::thread_all_supported()
                .iter()
                .map(|c| c.index())
                .max()
        })
        .unwrap_or(40)
        .min(63)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> Result<(CapHeader, [CapData; 2]), CapabilityError> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are valid, correctly laid out (linux/capability.h, version 3 uses
    // two data structs) and live across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(CapabilityError::Syscall {
            op: "capget",
            errno: Errno::last(),
        });
    }
    Ok((header, data))
}

fn capset(
    header: &mut CapHeader,
    data: &[CapData; 2],
    op: &'static str,
) -> Result<(), CapabilityError> {
    // SAFETY: header and data are valid version-3 structures that live across the call; the
    // kernel only reads data.
    let rc = unsafe { libc::syscall(libc::SYS_capset, header as *mut CapHeader, data.as_ptr()) };
    if rc != 0 {
        return Err(CapabilityError::Syscall {
            op,
            errno: Errno::last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_names_parse() {
        let caps = docker_capabilities(DOCKER_DEFAULT).unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&OciCapability::NetBindService));
        let sets = CapabilitySets::from_oci(&caps).unwrap();
        // CAP_SYS_ADMIN (21) is dropped from the bounding set, CAP_CHOWN (0) kept.
        assert!(sets.bounding_drop.contains(&21));
        assert!(!sets.bounding_drop.contains(&0));
        assert_eq!(sets.effective.count_ones(), 14);
        assert_eq!(sets.inheritable, 0);
        assert!(sets.ambient.is_empty());
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(parse_capabilities(&["CAP_FLY"]).is_err());
        assert_eq!(parse_capabilities(&["sys_admin"]).unwrap().len(), 1);
    }
}
