//! The runtime's only contact with `vmrun-security`: seccomp (compiled in the
//! parent before fork, loaded in the child: before the capability drop, or
//! last after `no_new_privs`), capabilities (set in the child after setuid,
//! with keep-caps across it), and `no_new_privs`.

use oci_spec::runtime::{LinuxCapabilities, LinuxSeccomp};

use crate::error::{ChildError, RuntimeError};

/// A seccomp filter compiled to BPF, ready to load.
pub(crate) type CompiledSeccomp = vmrun_security::seccomp::CompiledFilter;

/// Parent side: compiles `linux.seccomp`.
pub(crate) fn compile_seccomp(seccomp: &LinuxSeccomp) -> Result<CompiledSeccomp, RuntimeError> {
    vmrun_security::seccomp::compile(seccomp)
        .map_err(|e| RuntimeError::Security(format!("seccomp: {e}")))
}

/// Child side: loads the filter (needs `no_new_privs` or CAP_SYS_ADMIN).
pub(crate) fn apply_seccomp(filter: &CompiledSeccomp) -> Result<(), ChildError> {
    vmrun_security::seccomp::apply(filter)
        .map_err(|e| ChildError::Setup(format!("load seccomp filter: {e}")))
}

/// Child side, after setuid: bounding, effective, permitted, inheritable, ambient sets.
pub(crate) fn apply_capabilities(caps: &LinuxCapabilities) -> Result<(), ChildError> {
    vmrun_security::capabilities::apply(caps)
        .map_err(|e| ChildError::Setup(format!("set capabilities: {e}")))
}

/// Child side: keep permitted capabilities across `setresuid` (or stop).
pub(crate) fn set_keep_caps(keep: bool) -> Result<(), ChildError> {
    vmrun_security::capabilities::set_keep_caps(keep)
        .map_err(|e| ChildError::Setup(format!("keep capabilities: {e}")))
}

/// Child side: sets `no_new_privs`.
pub(crate) fn set_no_new_privs() -> Result<(), ChildError> {
    vmrun_security::seccomp::set_no_new_privs()
        .map_err(|e| ChildError::Setup(format!("set no_new_privs: {e}")))
}

/// Drops ambient capabilities the kernel would refuse to raise (those not in
/// both the inheritable and permitted sets), as runc and crun tolerate them:
/// `runc spec` itself lists ambient capabilities without an inheritable set.
pub(crate) fn normalize_capabilities(caps: &LinuxCapabilities) -> LinuxCapabilities {
    let mut caps = caps.clone();
    if let Some(ambient) = caps.ambient() {
        let allowed = |c: &oci_spec::runtime::Capability| {
            caps.inheritable().as_ref().is_some_and(|s| s.contains(c))
                && caps.permitted().as_ref().is_some_and(|s| s.contains(c))
        };
        let kept: oci_spec::runtime::Capabilities =
            ambient.iter().copied().filter(|c| allowed(c)).collect();
        if kept.len() != ambient.len() {
            tracing::debug!("ignoring ambient capabilities outside inheritable and permitted");
        }
        caps.set_ambient(Some(kept));
    }
    caps
}
