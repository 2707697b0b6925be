//! Compiling seccomp filters in the parent and loading them in a forked child.

mod common;

use common::{in_child, raw};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use vmrun_security::capabilities::{self, CapabilitySets, DOCKER_DEFAULT};
use vmrun_security::seccomp::{self, SeccompError};

const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;

fn default_caps() -> Vec<String> {
    DOCKER_DEFAULT.iter().map(|c| c.to_string()).collect()
}

#[test]
fn default_profile_compiles() {
    let filter = seccomp::compile(&seccomp::docker_default_profile(&default_caps())).unwrap();
    assert!(filter.len() > 100, "{filter:?}");
    let with_admin = seccomp::docker_default_profile(&["CAP_SYS_ADMIN".to_string()]);
    seccomp::compile(&with_admin).unwrap();
}

#[test]
fn default_profile_blocks_and_allows() {
    let filter = seccomp::compile(&seccomp::docker_default_profile(&default_caps())).unwrap();
    // Root loads it with CAP_SYS_ADMIN; anyone else needs no_new_privs first.
    let needs_nnp = !common::is_root();
    let code = in_child(|| {
        if needs_nnp && seccomp::set_no_new_privs().is_err() {
            return 1;
        }
        if seccomp::apply(&filter).is_err() {
            return 1;
        }
        // Allowed: getpid.
        if raw(libc::SYS_getpid, 0, 0, 0).0 <= 0 {
            return 2;
        }
        // Blocked by the allowlist: keyctl -> EPERM.
        if raw(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            0,
        ) != (-1, libc::EPERM)
        {
            return 3;
        }
        // Needs CAP_SYS_ADMIN in the profile: unshare -> EPERM (even though we are root).
        if raw(libc::SYS_unshare, libc::CLONE_NEWUSER as libc::c_long, 0, 0) != (-1, libc::EPERM) {
            return 4;
        }
        // clone3 answers ENOSYS so libc falls back to clone.
        if raw(libc::SYS_clone3, 0, 0, 0) != (-1, libc::ENOSYS) {
            return 5;
        }
        // clone without namespace flags (what fork does) still works.
        // SAFETY: the grandchild exits at once.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: leaving the grandchild.
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            return 6;
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        // personality(0xffffffff) (query) is allowed; personality(0x0400000) is not.
        if raw(libc::SYS_personality, 0xffff_ffff, 0, 0).0 < 0 {
            return 7;
        }
        if raw(libc::SYS_personality, 0x0040_0000, 0, 0) != (-1, libc::EPERM) {
            return 8;
        }
        0
    });
    assert_eq!(code, 0, "check {code} failed in the child");
}

fn syscall(name: &str, action: LinuxSeccompAction, errno: Option<u32>) -> LinuxSyscall {
    let mut s = LinuxSyscallBuilder::default()
        .names(vec![name.to_string()])
        .action(action)
        .build()
        .unwrap();
    s.set_errno_ret(errno);
    s
}

fn arg(
    index: usize,
    value: u64,
    value_two: u64,
    op: LinuxSeccompOperator,
) -> oci_spec::runtime::LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .value_two(value_two)
        .op(op)
        .build()
        .unwrap()
}

#[test]
fn custom_filter_with_args_and_errno() {
    // Default allow; getpriority(PRIO_PGRP, ..) -> EXDEV; dup3 with flags & O_CLOEXEC == O_CLOEXEC
    // -> ENOTTY; getppid -> EXDEV only when arg0 > 5 (never, getppid takes no args: stays allowed);
    // an unknown syscall name is skipped.
    let mut by_arg = syscall(
        "getpriority",
        LinuxSeccompAction::ScmpActErrno,
        Some(libc::EXDEV as u32),
    );
    by_arg.set_args(Some(vec![arg(
        0,
        libc::PRIO_PGRP as u64,
        0,
        LinuxSeccompOperator::ScmpCmpEq,
    )]));
    let mut masked = syscall(
        "dup3",
        LinuxSeccompAction::ScmpActErrno,
        Some(libc::ENOTTY as u32),
    );
    let cloexec = libc::O_CLOEXEC as u64;
    masked.set_args(Some(vec![arg(
        2,
        cloexec,
        cloexec,
        LinuxSeccompOperator::ScmpCmpMaskedEq,
    )]));
    let mut gt = syscall(
        "getppid",
        LinuxSeccompAction::ScmpActErrno,
        Some(libc::EXDEV as u32),
    );
    gt.set_args(Some(vec![arg(0, 5, 0, LinuxSeccompOperator::ScmpCmpGt)]));
    let unknown = syscall("no_such_syscall", LinuxSeccompAction::ScmpActErrno, None);
    let spec: LinuxSeccomp = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(vec![by_arg, masked, gt, unknown])
        .build()
        .unwrap();
    let filter = seccomp::compile(&spec).unwrap();
    let code = in_child(|| {
        if seccomp::set_no_new_privs().is_err() || seccomp::apply(&filter).is_err() {
            return 1;
        }
        if raw(
            libc::SYS_getpriority,
            libc::PRIO_PROCESS as libc::c_long,
            0,
            0,
        )
        .0 < 0
        {
            return 2;
        }
        if raw(libc::SYS_getpriority, libc::PRIO_PGRP as libc::c_long, 0, 0) != (-1, libc::EXDEV) {
            return 3;
        }
        if raw(libc::SYS_dup3, 0, 100, libc::O_CLOEXEC as libc::c_long) != (-1, libc::ENOTTY) {
            return 4;
        }
        if raw(libc::SYS_dup3, 0, 101, 0).0 != 101 {
            return 5;
        }
        if raw(libc::SYS_getppid, 0, 0, 0).0 <= 0 {
            return 6;
        }
        0
    });
    assert_eq!(code, 0, "check {code} failed in the child");
}

#[test]
fn notify_is_refused() {
    let spec = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(vec![syscall(
            "getpid",
            LinuxSeccompAction::ScmpActNotify,
            None,
        )])
        .build()
        .unwrap();
    assert!(matches!(
        seccomp::compile(&spec),
        Err(SeccompError::UnsupportedAction(_))
    ));
}

#[test]
fn loading_without_sys_admin_needs_no_new_privs() {
    if !common::is_root() {
        vmrun_test_skip::report(format_args!(
            "needs root to hold CAP_SYS_ADMIN and then drop it"
        ));
        return;
    }
    let filter = seccomp::compile(&seccomp::docker_default_profile(&default_caps())).unwrap();
    let caps =
        CapabilitySets::from_oci(&capabilities::docker_capabilities(DOCKER_DEFAULT).unwrap())
            .unwrap();
    let code = in_child(|| {
        if caps.apply().is_err() {
            return 1;
        }
        match seccomp::apply(&filter) {
            Err(SeccompError::Load(nix::errno::Errno::EACCES)) => {}
            _ => return 2,
        }
        if seccomp::set_no_new_privs().is_err() || seccomp::apply(&filter).is_err() {
            return 3;
        }
        0
    });
    assert_eq!(code, 0, "check {code} failed in the child");
}

#[test]
fn same_index_conditions_or_distinct_indices_and() {
    use LinuxSeccompOperator::ScmpCmpEq as Eq;
    // Same index twice: libseccomp cannot AND them, so (as runc) either one matches.
    let mut either = syscall(
        "getpriority",
        LinuxSeccompAction::ScmpActErrno,
        Some(libc::EXDEV as u32),
    );
    either.set_args(Some(vec![
        arg(0, libc::PRIO_PGRP as u64, 0, Eq),
        arg(0, libc::PRIO_USER as u64, 0, Eq),
    ]));
    // Distinct indices: both must match.
    let mut both = syscall(
        "setpriority",
        LinuxSeccompAction::ScmpActErrno,
        Some(libc::EXDEV as u32),
    );
    both.set_args(Some(vec![
        arg(0, libc::PRIO_PROCESS as u64, 0, Eq),
        arg(1, 0, 0, Eq),
    ]));
    let spec = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(vec![either, both])
        .build()
        .unwrap();
    let filter = seccomp::compile(&spec).unwrap();
    let code = in_child(|| {
        if seccomp::set_no_new_privs().is_err() || seccomp::apply(&filter).is_err() {
            return 1;
        }
        let prio = |which: libc::c_int| raw(libc::SYS_getpriority, which as libc::c_long, 0, 0);
        if prio(libc::PRIO_PGRP as libc::c_int) != (-1, libc::EXDEV)
            || prio(libc::PRIO_USER as libc::c_int) != (-1, libc::EXDEV)
        {
            return 2;
        }
        if prio(libc::PRIO_PROCESS as libc::c_int).0 < 0 {
            return 3;
        }
        // setpriority(PRIO_PROCESS, 0, 0): both conditions match -> EXDEV.
        if raw(
            libc::SYS_setpriority,
            libc::PRIO_PROCESS as libc::c_long,
            0,
            0,
        ) != (-1, libc::EXDEV)
        {
            return 4;
        }
        // setpriority(PRIO_PROCESS, own pid, 0): second condition fails -> allowed.
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() } as libc::c_long;
        if raw(
            libc::SYS_setpriority,
            libc::PRIO_PROCESS as libc::c_long,
            me,
            0,
        )
        .0 != 0
        {
            return 5;
        }
        0
    });
    assert_eq!(code, 0, "check {code} failed in the child");
}
