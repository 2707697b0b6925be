//! Signal forwarding for a foreground `run` or `exec`, like runc: the
//! signals a terminal or a supervisor sends us go to the container's
//! process instead of ending this one and leaving the process behind.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

/// The process signals are forwarded to (0: none yet).
static TARGET: AtomicI32 = AtomicI32::new(0);

/// What is forwarded: what a terminal, `kill` or a supervisor sends.
const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

extern "C" fn forward(signal: libc::c_int) {
    let pid = TARGET.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; integers only.
        unsafe { libc::kill(pid, signal) };
    }
}

/// From now on, the signals in [`FORWARDED`] go to `pid`. Call only once
/// the process has exec'd (a forked child would inherit the handlers).
pub(crate) fn forward_to(pid: Pid) {
    TARGET.store(pid.as_raw(), Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in FORWARDED {
        // SAFETY: the handler only reads an atomic and calls kill(2), both
        // async-signal-safe.
        unsafe {
            let _ = sigaction(signal, &action);
        }
    }
}
