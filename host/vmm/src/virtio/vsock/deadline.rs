//! A one-shot timerfd that wakes the muxer's epoll when the earliest connection-setup
//! deadline passes (host clients that never finish `CONNECT <port>\n`, guests that never
//! answer a REQUEST).

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use vmm_sys_util::timerfd::TimerFd;

/// How long a host client has to send its `CONNECT <port>\n` line, and the guest to answer
/// the REQUEST that follows (Firecracker's `CONN_REQUEST_TIMEOUT_MS`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(2000);

/// The shortest delay the timer is armed for (a zero delay would disarm a timerfd).
const MIN_DELAY: Duration = Duration::from_millis(1);

/// A non-blocking one-shot timer that remembers the deadline it is armed for.
pub struct DeadlineTimer {
    timer: TimerFd,
    armed_for: Option<Instant>,
}

impl DeadlineTimer {
    /// A disarmed timer.
    pub fn new() -> std::io::Result<Self> {
        let timer = TimerFd::new()?;
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no memory is passed.
        let rc = unsafe {
            let flags = libc::fcntl(timer.as_raw_fd(), libc::F_GETFL);
            if flags < 0 {
                flags
            } else {
                libc::fcntl(timer.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
            }
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            timer,
            armed_for: None,
        })
    }

    /// The fd that becomes readable when the timer fires.
    pub fn fd(&self) -> RawFd {
        self.timer.as_raw_fd()
    }

    /// Makes sure the timer fires no later than `deadline`.
    pub fn arm_by(&mut self, deadline: Instant) {
        if matches!(self.armed_for, Some(armed) if armed <= deadline) {
            return;
        }
        let delay = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_DELAY);
        match self.timer.reset(delay, None) {
            Ok(()) => self.armed_for = Some(deadline),
            Err(e) => tracing::warn!("vsock: arming the connect timer: {e}"),
        }
    }

    /// Consumes an expiry (the fd was readable); the timer is then disarmed.
    pub fn acknowledge(&mut self) {
        // A failed read only means there was nothing to consume (EAGAIN).
        let _ = self.timer.wait();
        self.armed_for = None;
    }
}
