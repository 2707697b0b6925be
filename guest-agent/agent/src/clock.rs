//! The guest's wall clock, set from the host's (at the hello and on `SetTime`).
//!
//! A microVM's clock starts from the RTC (or 1970) and drifts while the host sleeps; the
//! host sends its time and the agent moves the clock only when it is off by more than
//! [`CLOCK_SLACK_MS`], like Lima's guest agent, so small offsets never make time jump.

use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, clock_settime, ClockId};
use vmrun_agent_protocol::CLOCK_SLACK_MS;

/// Nanoseconds since the Unix epoch on this machine's wall clock.
pub fn now_unix_nanos() -> Result<i64, nix::Error> {
    let t = clock_gettime(ClockId::CLOCK_REALTIME)?;
    Ok(t.tv_sec() * 1_000_000_000 + t.tv_nsec())
}

/// Moves the clock to `host_unix_nanos` when it is off by more than the slack. Returns
/// whether it moved and the offset before (guest minus host, milliseconds).
pub fn sync_to(host_unix_nanos: i64) -> Result<(bool, i64), nix::Error> {
    let offset_ms = (now_unix_nanos()? - host_unix_nanos) / 1_000_000;
    if offset_ms.abs() <= CLOCK_SLACK_MS {
        return Ok((false, offset_ms));
    }
    let ts = TimeSpec::new(
        host_unix_nanos.div_euclid(1_000_000_000),
        host_unix_nanos.rem_euclid(1_000_000_000),
    );
    clock_settime(ClockId::CLOCK_REALTIME, ts)?;
    tracing::info!(offset_ms, "clock set from the host");
    Ok((true, offset_ms))
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_offsets_leave_the_clock_alone() {
        let now = super::now_unix_nanos().unwrap();
        let (moved, offset) = super::sync_to(now + 20_000_000).unwrap();
        assert!(!moved);
        assert!(offset.abs() <= super::CLOCK_SLACK_MS);
    }
}
