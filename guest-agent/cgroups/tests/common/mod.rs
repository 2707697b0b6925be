//! Helpers shared by the cgroup integration tests: root checks, unique names, and forked
//! children that wait for a go signal and then do one thing using raw system calls only (the
//! test harness is multi-threaded, so a forked child must not allocate).

#![allow(dead_code)]

use std::process::{Child, Command};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A cgroups path unique to this test process and `name`.
pub fn unique_path(name: &str) -> String {
    format!("/vmrun-test-{}/{name}", std::process::id())
}

/// A process that sleeps until killed.
pub fn sleeper() -> Child {
    Command::new("sleep").arg("300").spawn().unwrap()
}

pub fn kill_and_reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// What a forked child does once released.
#[derive(Clone, Copy)]
pub enum ChildTask {
    /// mmap this many bytes and write to every page, then exit 0.
    TouchMemory(usize),
    /// fork once: exit 0 if fork fails with EAGAIN, 1 if it succeeds, 2 on another error.
    TryFork,
}

/// A forked child blocked on a pipe until [`Gated::release`].
pub struct Gated {
    pub pid: Pid,
    write_fd: libc::c_int,
}

impl Gated {
    pub fn spawn(task: ChildTask) -> Gated {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds is a valid array of two ints.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only makes raw system calls (read, mmap, fork, _exit) before exiting.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: raw system calls on our own descriptors and memory; _exit never returns.
            unsafe {
                libc::close(fds[1]);
                let mut byte = 0u8;
                libc::read(fds[0], &mut byte as *mut u8 as *mut libc::c_void, 1);
                let code = run_task(task);
                libc::_exit(code);
            }
        }
        // SAFETY: closing our copy of the read end.
        unsafe { libc::close(fds[0]) };
        Gated {
            pid: Pid::from_raw(pid),
            write_fd: fds[1],
        }
    }

    pub fn release(&self) {
        // SAFETY: writing one byte from a live local to our pipe.
        let n = unsafe { libc::write(self.write_fd, b"g".as_ptr() as *const libc::c_void, 1) };
        assert_eq!(n, 1);
    }

    pub fn wait(&self) -> WaitStatus {
        waitpid(self.pid, None).unwrap()
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        // SAFETY: closing our pipe end; killing a pid we forked (harmless if already reaped).
        unsafe { libc::close(self.write_fd) };
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// # Safety
/// Runs in a forked child: raw system calls only.
unsafe fn run_task(task: ChildTask) -> i32 {
    match task {
        ChildTask::TouchMemory(len) => {
            // SAFETY: anonymous private mapping; we only write inside it.
            unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    return 3;
                }
                let bytes = p as *mut u8;
                let mut off = 0;
                while off < len {
                    std::ptr::write_volatile(bytes.add(off), 1);
                    off += 4096;
                }
                0
            }
        }
        ChildTask::TryFork => {
            // SAFETY: the grandchild exits at once.
            unsafe {
                let pid = libc::fork();
                if pid == 0 {
                    libc::_exit(0);
                }
                if pid > 0 {
                    let mut status = 0;
                    libc::waitpid(pid, &mut status, 0);
                    return 1;
                }
                if *libc::__errno_location() == libc::EAGAIN {
                    0
                } else {
                    2
                }
            }
        }
    }
}
