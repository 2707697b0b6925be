//! Restart policies (`no`, `always`, `unless-stopped`, `on-failure[:N]`) as dockerd applies
//! them: after an exit that was not a `docker stop`, a restart after a back-off that starts
//! at 100 ms and doubles with each restart (at most a minute), back to 100 ms once a run
//! lasted 10 s; `RestartCount` counts them; a `stop` during the back-off cancels it. A
//! `docker kill` makes the next exit final, as dockerd's `ExitOnNext` does (until the
//! container is started again), without counting as a stop at daemon start. When
//! the daemon starts, `always` containers start again, `unless-stopped` and `on-failure`
//! ones unless they were stopped by the user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard_stubs::models::HostConfig;

use super::{Engine, EngineError};
use crate::state::{ContainerRecord, Status};

/// First back-off.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// Longest back-off.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
const RESET_AFTER: Duration = Duration::from_secs(10);

/// A container's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Never.
    No,
    /// After every exit but a `stop`, and at every daemon start.
    Always,
    /// Like `always`, but not at a daemon start after a `stop`.
    UnlessStopped,
    /// After a non-zero exit, at most `max` times (0: no limit).
    OnFailure {
        /// Retries allowed; 0 for unlimited.
        max: u32,
    },
}

impl Policy {
    /// Docker's `{"Name": ..., "MaximumRetryCount": N}`.
    pub fn parse(name: &str, max: i64) -> Result<Policy, EngineError> {
        let policy = match name {
            "" | "no" => Policy::No,
            "always" => Policy::Always,
            "unless-stopped" => Policy::UnlessStopped,
            "on-failure" => Policy::OnFailure {
                max: u32::try_from(max).map_err(|_| {
                    EngineError::bad_request(format!(
                        "invalid restart policy: maximum retry count cannot be negative: {max}"
                    ))
                })?,
            },
            other => {
                return Err(EngineError::bad_request(format!(
                    "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
                )))
            }
        };
        if max != 0 && !matches!(policy, Policy::OnFailure { .. }) {
            return Err(EngineError::bad_request(format!(
                "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be used with '{name}'"
            )));
        }
        Ok(policy)
    }

    /// The policy saved in a container's `HostConfig`.
    pub fn of(rec: &ContainerRecord) -> Policy {
        let p = rec.host_config.rest.get("RestartPolicy");
        let name = p
            .and_then(|p| p.get("Name"))
            .and_then(|n| n.as_str())
            .unwrap_or("");
        let max = p
            .and_then(|p| p.get("MaximumRetryCount"))
            .and_then(|n| n.as_i64())
            .unwrap_or(0);
        Policy::parse(name, max).unwrap_or(Policy::No)
    }

    /// Whether an exit calls for a restart.
    pub fn after_exit(self, exit_code: i32, stopped_by_user: bool, restarts: u32) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            Policy::No => false,
            Policy::Always | Policy::UnlessStopped => true,
            Policy::OnFailure { max } => exit_code != 0 && (max == 0 || restarts < max),
        }
    }

    /// Whether a container that is not running starts with the daemon.
    pub fn at_daemon_start(self, exit_code: i32, stopped_by_user: bool, restarts: u32) -> bool {
        match self {
            Policy::Always => true,
            other => other.after_exit(exit_code, stopped_by_user, restarts),
        }
    }
}

/// Checks a create request's policy: a known name, a count only with `on-failure`, not
/// with `AutoRemove`.
pub fn validate(hc: &HostConfig) -> Result<(), EngineError> {
    let Some(p) = &hc.restart_policy else {
        return Ok(());
    };
    let name = p.name.map(|n| n.to_string()).unwrap_or_default();
    let policy = Policy::parse(&name, p.maximum_retry_count.unwrap_or(0))?;
    if policy != Policy::No && hc.auto_remove.unwrap_or(false) {
        return Err(EngineError::bad_request(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    Ok(())
}

/// The next back-off: 100 ms, doubling, at most a minute; reset by a long run.
pub fn next_delay(previous: Option<Duration>, ran: Duration) -> Duration {
    match previous {
        Some(d) if ran < RESET_AFTER => (d * 2).min(MAX_DELAY),
        _ => FIRST_DELAY,
    }
}

/// Back-off state per container, in memory as in dockerd.
#[derive(Default)]
pub struct Restarts {
    inner: Mutex<HashMap<String, Backoff>>,
}

#[derive(Default)]
struct Backoff {
    /// Set by a kill: the next exit is not restarted.
    exit_on_next: bool,
    /// The back-off is over and the start is under way.
    starting: bool,
    delay: Option<Duration>,
    /// The scheduled restart's number; `None` when none is pending.
    pending: Option<u64>,
    generation: u64,
}

impl Restarts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Backoff>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Schedules one: its delay and ticket.
    fn schedule(&self, id: &str, ran: Duration) -> (Duration, u64) {
        let mut map = self.lock();
        let b = map.entry(id.to_string()).or_default();
        let delay = next_delay(b.delay, ran);
        b.delay = Some(delay);
        b.generation += 1;
        b.pending = Some(b.generation);
        (delay, b.generation)
    }

    /// Takes the pending restart if it is still `ticket`.
    fn take(&self, id: &str, ticket: u64) -> bool {
        let mut map = self.lock();
        match map.get_mut(id) {
            Some(b) if b.pending == Some(ticket) => {
                b.pending = None;
                b.starting = true;
                true
            }
            _ => false,
        }
    }

    /// Cancels a pending restart; whether there was one.
    pub fn cancel(&self, id: &str) -> bool {
        self.lock()
            .get_mut(id)
            .and_then(|b| b.pending.take())
            .is_some()
    }

    fn done_starting(&self, id: &str) {
        if let Some(b) = self.lock().get_mut(id) {
            b.starting = false;
        }
    }

    fn starting(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|b| b.starting)
    }

    /// A kill: the next exit is final.
    pub fn exit_on_next(&self, id: &str) {
        self.lock().entry(id.to_string()).or_default().exit_on_next = true;
    }

    /// A start: exits are restarted again.
    pub fn started(&self, id: &str) {
        if let Some(b) = self.lock().get_mut(id) {
            b.exit_on_next = false;
        }
    }

    fn take_exit_on_next(&self, id: &str) -> bool {
        self.lock()
            .get_mut(id)
            .is_some_and(|b| std::mem::take(&mut b.exit_on_next))
    }

    /// Whether a restart is pending (docker's `State.Restarting`).
    pub fn pending(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|b| b.pending.is_some())
    }
}

fn run_time(rec: &ContainerRecord) -> Duration {
    let parse = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    match (parse(&rec.state.started_at), parse(&rec.state.finished_at)) {
        (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

impl Engine {
    /// After an exit was recorded: schedules a restart if the policy asks for one.
    pub(super) fn restart_after_exit(self: &Arc<Self>, rec: &ContainerRecord) {
        if self.restarts.take_exit_on_next(&rec.id) {
            return;
        }
        // As saved now: a stop may have come in since the exit was recorded.
        let Ok(rec) = self.container(&rec.id) else {
            return;
        };
        let rec = &rec;
        let policy = Policy::of(rec);
        if !policy.after_exit(
            rec.state.exit_code,
            rec.state.stopped_by_user,
            rec.restart_count,
        ) {
            return;
        }
        self.schedule_restart(rec, false);
    }

    /// Restarts after the back-off; `forced` (daemon start) even if stopped by the user.
    fn schedule_restart(self: &Arc<Self>, rec: &ContainerRecord, forced: bool) {
        let (delay, ticket) = self.restarts.schedule(&rec.id, run_time(rec));
        tracing::debug!(
            container = rec.short_id(),
            ?delay,
            "restarting per its policy"
        );
        let engine = self.clone();
        let id = rec.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if !engine.restarts.take(&id, ticket) {
                return;
            }
            let started = engine.restart_now(&id, forced).await;
            engine.restarts.done_starting(&id);
            if let Err(e) = started {
                tracing::warn!("restarting {}: {e}", &id[..12.min(id.len())]);
                if let Ok(rec) = engine.container(&id) {
                    engine.restart_after_exit(&rec);
                }
            }
        });
    }

    async fn restart_now(self: &Arc<Self>, id: &str, forced: bool) -> Result<(), EngineError> {
        let rec = self.container(id)?;
        let waiting = matches!(rec.state.status, Status::Exited | Status::Created);
        if !waiting || (rec.state.stopped_by_user && !forced) {
            return Ok(());
        }
        self.store.update(id, |r| r.restart_count += 1)?;
        self.start_container(id).await.map(|_| ())
    }

    /// Before a stop: a restart waiting for its back-off is called off, one already
    /// starting is waited for (so the stop then ends what it started).
    pub(super) async fn settle_restart(&self, id: &str) {
        self.restarts.cancel(id);
        for _ in 0..600 {
            if !self.restarts.starting(id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A stop of a container that is not running: no restart follows (also one its exit,
    /// being recorded right now, may still schedule).
    pub(super) fn stopped_while_down(&self, rec: &ContainerRecord) -> Result<(), EngineError> {
        if Policy::of(rec) == Policy::No {
            return Ok(());
        }
        self.restarts.cancel(&rec.id);
        self.store.update(&rec.id, |r| {
            if !r.is_running() {
                r.state.stopped_by_user = true;
            }
        })?;
        Ok(())
    }

    /// At daemon start, after [`Engine::recover`]: starts the containers whose policy
    /// says so.
    pub(super) fn restart_at_daemon_start(self: &Arc<Self>) {
        for rec in self.store.list() {
            if rec.state.status != Status::Exited || self.restarts.pending(&rec.id) {
                continue;
            }
            let policy = Policy::of(&rec);
            if policy.at_daemon_start(
                rec.state.exit_code,
                rec.state.stopped_by_user,
                rec.restart_count,
            ) {
                tracing::info!("starting {} per its restart policy", rec.short_id());
                self.schedule_restart(&rec, true);
            }
        }
    }

    /// Whether the container waits for a restart (docker's `State.Restarting`).
    pub fn restarting(&self, id: &str) -> bool {
        self.restarts.pending(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_and_resets() {
        let short = Duration::from_secs(1);
        let d1 = next_delay(None, short);
        assert_eq!(d1, Duration::from_millis(100));
        let d2 = next_delay(Some(d1), short);
        assert_eq!(d2, Duration::from_millis(200));
        assert_eq!(next_delay(Some(d2), short), Duration::from_millis(400));
        assert_eq!(next_delay(Some(MAX_DELAY), short), MAX_DELAY);
        assert_eq!(next_delay(Some(d2), Duration::from_secs(10)), d1);
    }

    #[test]
    fn policies_decide_like_dockerd() {
        assert!(!Policy::No.after_exit(1, false, 0));
        assert!(Policy::Always.after_exit(0, false, 5));
        assert!(!Policy::Always.after_exit(0, true, 0));
        assert!(Policy::Always.at_daemon_start(0, true, 0));
        assert!(!Policy::UnlessStopped.at_daemon_start(0, true, 0));
        assert!(Policy::UnlessStopped.at_daemon_start(0, false, 0));
        let two = Policy::OnFailure { max: 2 };
        assert!(!two.after_exit(0, false, 0));
        assert!(two.after_exit(3, false, 1));
        assert!(!two.after_exit(3, false, 2));
        assert!(Policy::OnFailure { max: 0 }.after_exit(3, false, 100));
        assert!(Policy::parse("always", 3).is_err());
        assert!(Policy::parse("sometimes", 0).is_err());
        assert!(Policy::parse("on-failure", -1).is_err());
    }
}
