//! Keeping a guest's clock with the host's: the agent sets it at every connection's hello;
//! this also asks every [`RESYNC_PERIOD`], and at once when the host has slept (suspend
//! stops `CLOCK_MONOTONIC` but not `CLOCK_BOOTTIME`), the drift Docker Desktop users know
//! after a laptop wakes. The agent changes the clock only when it is off by more than
//! 100 ms, as Lima does.

use std::sync::Weak;
use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

use super::machine::Machine;

/// How often the guest clock is checked anyway.
pub const RESYNC_PERIOD: Duration = Duration::from_secs(60);
/// How often the host is checked for having slept.
const SLEEP_CHECK: Duration = Duration::from_secs(5);
/// Suspend time that counts as "the host slept".
const SLEPT: Duration = Duration::from_secs(1);

/// `CLOCK_BOOTTIME - CLOCK_MONOTONIC`: grows by the time the host spent suspended.
fn suspended() -> Duration {
    let d = |id| {
        clock_gettime(id)
            .map(Duration::from)
            .unwrap_or(Duration::ZERO)
    };
    d(ClockId::CLOCK_BOOTTIME).saturating_sub(d(ClockId::CLOCK_MONOTONIC))
}

/// Runs until the machine is gone or stopped: sets the guest clock every
/// [`RESYNC_PERIOD`] and after the host slept.
pub async fn keep_in_sync(machine: Weak<Machine>) {
    let mut last_suspended = suspended();
    let mut since_sync = Duration::ZERO;
    loop {
        tokio::time::sleep(SLEEP_CHECK).await;
        since_sync += SLEEP_CHECK;
        let now_suspended = suspended();
        let slept = now_suspended.saturating_sub(last_suspended) > SLEPT;
        last_suspended = now_suspended;
        if !slept && since_sync < RESYNC_PERIOD {
            continue;
        }
        let Some(m) = machine.upgrade() else { return };
        if m.exit_reason().is_some() {
            return;
        }
        since_sync = Duration::ZERO;
        match m
            .call("setting the guest clock", m.agent().set_time())
            .await
        {
            Ok((true, offset_ms)) => {
                tracing::info!(offset_ms, slept, "guest clock set from the host's")
            }
            Ok((false, _)) => {}
            Err(e) => tracing::debug!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boottime_is_never_behind_monotonic() {
        // The sleep detector's premise on this host.
        let a = suspended();
        let b = suspended();
        assert!(b + Duration::from_millis(1) >= a, "{a:?} then {b:?}");
    }
}
