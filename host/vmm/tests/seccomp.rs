//! The seccomp filters really confine: a forbidden syscall made after a thread's filter is
//! installed kills the process with SIGSYS, an allowed one does not. Each case runs in a
//! forked child; the filter is compiled before the fork so the child only installs it,
//! makes one syscall and `_exit`s.

use vmrun_vmm::seccomp::{self, ThreadKind};

/// Forks; the child installs `kind`'s filter, runs `syscall` and exits 0. Returns the raw
/// wait status.
fn in_child(kind: ThreadKind, syscall: fn()) -> i32 {
    let program = seccomp::filter(kind).unwrap();
    // SAFETY: the child only calls seccomp::apply (prctl + seccomp, no allocation), the raw
    // syscall under test and _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = match seccomp::apply(&program) {
            Ok(()) => {
                syscall();
                0
            }
            Err(_) => 42,
        };
        // SAFETY: _exit ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child; `status` is a valid out pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

fn killed_by_sigsys(status: i32) -> bool {
    libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS
}

fn inet_socket() {
    // SAFETY: socket(2) with constant arguments; the result is discarded (we die first).
    unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) };
}

fn unix_socket() {
    // SAFETY: socket(2) with constant arguments; the fd is closed at _exit.
    unsafe { libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0) };
}

fn exec_true() {
    let path = c"/bin/true";
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: NUL-terminated path and NULL-terminated argv/envp arrays that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execve,
            path.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
        )
    };
}

fn getpid() {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::syscall(libc::SYS_getpid) };
}

fn tty_ioctl() {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, a valid local.
    unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) };
}

/// `KVM_GET_MP_STATE` on a closed fd: EBADF, unless the filter kills first.
fn kvm_get_mp_state() {
    let mut state = [0u32; 1];
    // SAFETY: the ioctl fails with EBADF on fd -1; `state` would fit a kvm_mp_state anyway.
    unsafe { libc::ioctl(-1, 0x8004_ae98, state.as_mut_ptr()) };
}

#[test]
fn only_vcpu_threads_sample_the_halt_state() {
    let s = in_child(ThreadKind::Vcpu, kvm_get_mp_state);
    assert!(
        libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0,
        "status {s:#x}"
    );
    for kind in [ThreadKind::Devices, ThreadKind::Main] {
        let s = in_child(kind, kvm_get_mp_state);
        assert!(
            killed_by_sigsys(s),
            "{kind:?} KVM_GET_MP_STATE: status {s:#x}"
        );
    }
}

#[test]
fn forbidden_syscalls_kill_the_process_with_sigsys() {
    for kind in [ThreadKind::Vcpu, ThreadKind::Devices, ThreadKind::Main] {
        let s = in_child(kind, inet_socket);
        assert!(
            killed_by_sigsys(s),
            "{kind:?} socket(AF_INET): status {s:#x}"
        );
        let s = in_child(kind, exec_true);
        assert!(killed_by_sigsys(s), "{kind:?} execve: status {s:#x}");
        // ioctl is filtered by request: KVM_RUN and the halt-state reads (vCPU), FIONBIO (devices).
        let s = in_child(kind, tty_ioctl);
        assert!(
            killed_by_sigsys(s),
            "{kind:?} ioctl(TIOCGWINSZ): status {s:#x}"
        );
    }
    let s = in_child(ThreadKind::Vcpu, unix_socket);
    assert!(killed_by_sigsys(s), "vCPU socket(AF_UNIX): status {s:#x}");
}

#[test]
fn allowed_syscalls_pass() {
    for kind in [ThreadKind::Vcpu, ThreadKind::Devices, ThreadKind::Main] {
        let s = in_child(kind, getpid);
        assert!(
            libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0,
            "{kind:?}: status {s:#x}"
        );
    }
    // The device thread connects to host Unix sockets (guest → host connections).
    let s = in_child(ThreadKind::Devices, unix_socket);
    assert!(
        libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0,
        "status {s:#x}"
    );
}
