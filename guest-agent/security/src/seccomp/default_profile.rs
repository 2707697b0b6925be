//! Building Docker's default seccomp profile as an OCI `LinuxSeccomp`, with Docker's rules for
//! capability-, architecture- and kernel-dependent entries (moby's `setupSeccomp`).

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator,
    LinuxSyscall,
};

use super::default_syscalls::{ArgOp, ProfileRule, RuleAction, RULES};

/// errno for the default action: EPERM.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// Docker's default profile for this machine's architecture, given the capabilities the
/// container gets (names like "CAP_SYS_ADMIN"; the "CAP_" prefix is optional, case ignored).
pub fn docker_default_profile(capabilities: &[String]) -> LinuxSeccomp {
    let caps: Vec<String> = capabilities.iter().map(|c| canonical_cap(c)).collect();
    let arch = go_arch_name();
    let kernel = kernel_version();
    let syscalls: Vec<LinuxSyscall> = RULES
        .iter()
        .filter(|r| rule_applies(r, &caps, arch, kernel))
        .map(to_oci_syscall)
        .collect();
    let mut profile = LinuxSeccomp::default();
    profile
        .set_default_action(LinuxSeccompAction::ScmpActErrno)
        .set_default_errno_ret(Some(DEFAULT_ERRNO))
        .set_architectures(Some(native_architectures()))
        .set_syscalls(Some(syscalls));
    profile
}

/// Docker's filter: includes.caps all granted, excludes.caps none granted, the arch lists, and
/// a minimum kernel version.
fn rule_applies(
    rule: &ProfileRule,
    caps: &[String],
    arch: &str,
    kernel: Option<(u32, u32)>,
) -> bool {
    let granted = |c: &&str| caps.iter().any(|g| g == c);
    if rule.excludes_caps.iter().any(granted) {
        return false;
    }
    if rule.excludes_arches.contains(&arch) {
        return false;
    }
    if !rule.includes_caps.iter().all(granted) {
        return false;
    }
    if !rule.includes_arches.is_empty() && !rule.includes_arches.contains(&arch) {
        return false;
    }
    match (rule.min_kernel, kernel) {
        (Some(min), Some(have)) => have >= min,
        // Kernel version unknown: keep the rule, as Docker does when it cannot tell.
        _ => true,
    }
}

fn to_oci_syscall(rule: &ProfileRule) -> LinuxSyscall {
    let mut syscall = LinuxSyscall::default();
    syscall.set_names(rule.names.iter().map(|n| n.to_string()).collect());
    match rule.action {
        RuleAction::Allow => {
            syscall.set_action(LinuxSeccompAction::ScmpActAllow);
        }
        RuleAction::Errno(errno) => {
            syscall
                .set_action(LinuxSeccompAction::ScmpActErrno)
                .set_errno_ret(Some(errno));
        }
    }
    if !rule.args.is_empty() {
        let args = rule
            .args
            .iter()
            .map(|a| {
                let op = match a.op {
                    ArgOp::Eq => LinuxSeccompOperator::ScmpCmpEq,
                    ArgOp::Ne => LinuxSeccompOperator::ScmpCmpNe,
                    ArgOp::MaskedEq => LinuxSeccompOperator::ScmpCmpMaskedEq,
                };
                let builder = LinuxSeccompArgBuilder::default()
                    .index(a.index)
                    .value(a.value)
                    .op(op);
                // For masked_eq, value is the mask and value_two what the masked argument must be.
                let builder = if a.op == ArgOp::MaskedEq {
                    builder.value_two(0u64)
                } else {
                    builder
                };
                builder
                    .build()
                    .expect("every LinuxSeccompArg field has a default")
            })
            .collect();
        syscall.set_args(Some(args));
    }
    syscall
}

/// "cap_sys_admin" / "SYS_ADMIN" -> "CAP_SYS_ADMIN".
pub(crate) fn canonical_cap(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// The architecture names default.json uses (Go's GOARCH).
fn go_arch_name() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The archMap entry of default.json for the native architecture: itself plus the
/// architectures whose binaries it can also run.
fn native_architectures() -> Vec<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "s390x" => vec![Arch::ScmpArchS390x, Arch::ScmpArchS390],
        "riscv64" => vec![Arch::ScmpArchRiscv64],
        _ => vec![Arch::ScmpArchNative],
    }
}

/// (major, minor) of the running kernel, from uname(2).
fn kernel_version() -> Option<(u32, u32)> {
    let uname = nix::sys::utsname::uname().ok()?;
    parse_kernel_version(&uname.release().to_string_lossy())
}

fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_with(profile: &LinuxSeccomp, name: &str) -> Vec<LinuxSyscall> {
        profile
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.names().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.8.0"), Some((4, 8)));
        assert_eq!(parse_kernel_version("garbage"), None);
    }

    #[test]
    fn default_caps_forbid_mount_and_namespace_clone() {
        let caps: Vec<String> = crate::capabilities::DOCKER_DEFAULT
            .iter()
            .map(|c| c.to_string())
            .collect();
        let profile = docker_default_profile(&caps);
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(1));
        assert!(names_with(&profile, "mount").is_empty());
        assert!(names_with(&profile, "unshare").is_empty());
        assert!(names_with(&profile, "keyctl").is_empty());
        let clone = names_with(&profile, "clone");
        assert_eq!(clone.len(), 1);
        let args = clone[0].args().as_ref().unwrap();
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(args[0].value(), 2_114_060_288);
        let clone3 = names_with(&profile, "clone3");
        assert_eq!(clone3[0].errno_ret(), Some(38));
        assert_eq!(names_with(&profile, "personality").len(), 5);
        assert_eq!(names_with(&profile, "chown").len(), 1);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(names_with(&profile, "arch_prctl").len(), 1);
            assert!(names_with(&profile, "cacheflush").is_empty());
        }
    }

    #[test]
    fn sys_admin_allows_mount_and_any_clone() {
        let profile = docker_default_profile(&["sys_admin".to_string()]);
        assert_eq!(names_with(&profile, "mount").len(), 1);
        let clone = names_with(&profile, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].args().is_none());
        // clone3 is allowed outright, not answered with ENOSYS.
        let clone3 = names_with(&profile, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActAllow);
    }
}
