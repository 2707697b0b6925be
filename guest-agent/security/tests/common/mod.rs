//! Running a check in a forked child. The test harness is multi-threaded, so the child may only
//! make raw system calls; it reports through its exit code (0 = all good, otherwise the number
//! of the check that failed).

#![allow(dead_code)]

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// Forks, runs `check` in the child, and returns its exit code (or panics if it was killed).
pub fn in_child(check: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `check`, which by contract makes raw system calls only, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = check();
        // SAFETY: terminating the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    match waitpid(Pid::from_raw(pid), None).unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("child did not exit normally: {other:?}"),
    }
}

/// errno of the last failed call.
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// A raw syscall returning (result, errno).
pub fn raw(
    nr: libc::c_long,
    a: libc::c_long,
    b: libc::c_long,
    c: libc::c_long,
) -> (libc::c_long, i32) {
    // SAFETY: the tests only pass integer arguments to syscalls that take integers.
    let r = unsafe { libc::syscall(nr, a, b, c) };
    (r, if r < 0 { errno() } else { 0 })
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
