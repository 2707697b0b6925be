//! Health checks as dockerd runs them: the container's `Healthcheck` (from the image's
//! `HEALTHCHECK` or the create request) run as an exec inside it every `Interval`, each
//! run cut off after `Timeout` (every `StartInterval` instead while it is still starting
//! inside `StartPeriod`); `Retries` failures in a row make it `unhealthy` (failures inside
//! `StartPeriod` do not count), a success makes it `healthy`. `State.Health` keeps
//! the status, the failing streak and the last five runs; each change of status is a
//! `health_status: <status>` event.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::{Engine, EngineError};
use crate::backend::{AttachOptions, ExecSpec};
use crate::state::{ContainerRecord, HealthLogEntry, HealthState};

/// Runs kept in `State.Health.Log`.
const LOG_RUNS: usize = 5;
/// Output kept per run.
const MAX_OUTPUT: usize = 4096;
/// dockerd's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);

/// A container's health check, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The command (`CMD` form; `CMD-SHELL` becomes `/bin/sh -c`).
    pub cmd: Vec<String>,
    /// Time between runs.
    pub interval: Duration,
    /// Time a run may take.
    pub timeout: Duration,
    /// Failures in a row that make it unhealthy.
    pub retries: u32,
    /// Time after the start when failures do not count.
    pub start_period: Duration,
    /// Time between runs inside the start period, while starting.
    pub start_interval: Duration,
}

fn duration(v: &Value, key: &str, default: Duration) -> Duration {
    match v.get(key).and_then(Value::as_i64) {
        Some(ns) if ns > 0 => Duration::from_nanos(ns as u64),
        _ => default,
    }
}

impl HealthCheck {
    /// From docker's `Healthcheck` document; `None` without one or with `["NONE"]`.
    pub fn from_config(v: &Value) -> Option<HealthCheck> {
        let test: Vec<String> = v
            .get("Test")?
            .as_array()?
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        let cmd = match test.split_first()? {
            (kind, rest) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            (kind, rest) if kind == "CMD-SHELL" && !rest.is_empty() => {
                vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
            }
            _ => return None,
        };
        Some(HealthCheck {
            cmd,
            interval: duration(v, "Interval", DEFAULT_INTERVAL),
            timeout: duration(v, "Timeout", DEFAULT_TIMEOUT),
            retries: v
                .get("Retries")
                .and_then(Value::as_u64)
                .filter(|r| *r > 0)
                .map_or(DEFAULT_RETRIES, |r| u32::try_from(r).unwrap_or(u32::MAX)),
            start_period: duration(v, "StartPeriod", Duration::ZERO),
            start_interval: duration(v, "StartInterval", DEFAULT_START_INTERVAL),
        })
    }

    /// The container's, if it has one.
    pub fn of(rec: &ContainerRecord) -> Option<HealthCheck> {
        HealthCheck::from_config(rec.config.rest.get("Healthcheck")?)
    }
}

/// The create request's `Healthcheck` merged over the image's, as dockerd merges them: the
/// image's test when the request has none, its durations where the request's are zero.
pub fn merge(request: Option<&Value>, image: Option<&Value>) -> Option<Value> {
    let (mut req, img) = match (request.filter(|v| !v.is_null()), image) {
        (None, img) => return img.filter(|v| !v.is_null()).cloned(),
        (Some(r), None) => return Some(r.clone()),
        (Some(r), Some(i)) => (r.clone(), i),
    };
    let empty = |v: Option<&Value>| v.and_then(Value::as_array).is_none_or(|a| a.is_empty());
    if empty(req.get("Test")) {
        if let Some(t) = img.get("Test") {
            req["Test"] = t.clone();
        }
    }
    for key in [
        "Interval",
        "Timeout",
        "StartPeriod",
        "StartInterval",
        "Retries",
    ] {
        let zero = req.get(key).and_then(Value::as_i64).unwrap_or(0) == 0;
        if let (true, Some(v)) = (zero, img.get(key)) {
            req[key] = v.clone();
        }
    }
    Some(req)
}

/// Checks a request's `Healthcheck` as dockerd does (durations of at least 1 ms, no
/// negative retries).
pub fn validate(v: Option<&Value>) -> Result<(), EngineError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    for (key, name) in [
        ("Interval", "Interval"),
        ("Timeout", "Timeout"),
        ("StartPeriod", "StartPeriod"),
        ("StartInterval", "StartInterval"),
    ] {
        let ns = v.get(key).and_then(Value::as_i64).unwrap_or(0);
        if ns != 0 && ns < 1_000_000 {
            return Err(EngineError::bad_request(format!(
                "{name} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if v.get("Retries").and_then(Value::as_i64).unwrap_or(0) < 0 {
        return Err(EngineError::bad_request(
            "Retries in Healthcheck cannot be negative",
        ));
    }
    Ok(())
}

/// Docker's multiplexed stream (8-byte headers) as plain text.
fn demux(raw: &[u8]) -> String {
    let mut out = Vec::new();
    let mut rest = raw;
    while rest.len() >= 8 {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + len).min(rest.len());
        out.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The state after one run.
pub fn record_run(
    state: &mut HealthState,
    entry: HealthLogEntry,
    check: &HealthCheck,
    in_start_period: bool,
) {
    let ok = entry.exit_code == 0;
    state.log.push(entry);
    let excess = state.log.len().saturating_sub(LOG_RUNS);
    state.log.drain(..excess);
    if ok {
        state.failing_streak = 0;
        state.status = "healthy".into();
    } else if !in_start_period || state.status != "starting" {
        state.failing_streak += 1;
        if state.failing_streak >= check.retries {
            state.status = "unhealthy".into();
        }
    }
}

impl Engine {
    /// Starts the health monitor of a container that just started (or was found running
    /// at daemon start), if it has a health check.
    pub(super) fn start_health_monitor(self: &Arc<Self>, id: &str, fresh: bool) {
        let Ok(rec) = self.container(id) else { return };
        let Some(check) = HealthCheck::of(&rec) else {
            return;
        };
        if fresh || rec.health.is_none() {
            let reset = self.store.update(id, |r| {
                r.health = Some(HealthState {
                    status: "starting".into(),
                    failing_streak: 0,
                    log: Vec::new(),
                })
            });
            if let Err(e) = reset {
                // The monitor still runs; its next result is written again.
                tracing::warn!("recording the health of {id} as starting: {e}");
            }
        }
        let run = rec.state.started_at.clone();
        let engine = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut starting = true;
            loop {
                let pause = if starting && started.elapsed() < check.start_period {
                    check.start_interval
                } else {
                    check.interval
                };
                tokio::time::sleep(pause).await;
                let still = engine
                    .container(&id)
                    .is_ok_and(|r| r.is_running() && r.state.started_at == run);
                if !still {
                    return;
                }
                let entry = engine.health_run(&id, &check).await;
                let in_start_period = started.elapsed() < check.start_period;
                let mut changed = None;
                let updated = engine.store.update(&id, |r| {
                    if !(r.is_running() && r.state.started_at == run) {
                        return;
                    }
                    let state = r.health.get_or_insert_with(HealthState::default);
                    let before = state.status.clone();
                    record_run(state, entry.clone(), &check, in_start_period);
                    if state.status != before {
                        changed = Some(state.status.clone());
                    }
                });
                let Ok(rec) = updated else { return };
                starting = rec.health.as_ref().is_some_and(|h| h.status == "starting");
                if let Some(status) = changed {
                    engine.events.emit(
                        "container",
                        &format!("health_status: {status}"),
                        &id,
                        &[("name", rec.name.clone()), ("image", rec.image.clone())],
                    );
                }
            }
        });
    }

    /// One run of the check as an exec; exit code -1 when it could not run or timed out.
    async fn health_run(self: &Arc<Self>, id: &str, check: &HealthCheck) -> HealthLogEntry {
        let start = vmrun_shim::now_rfc3339();
        let result = tokio::time::timeout(check.timeout, self.health_exec(id, &check.cmd)).await;
        let (exit_code, output) = match result {
            Ok(Ok((code, output))) => (i64::from(code), output),
            Ok(Err(e)) => (-1, e.to_string()),
            Err(_) => (
                -1,
                format!(
                    "Health check exceeded timeout ({}s)",
                    check.timeout.as_secs_f64()
                ),
            ),
        };
        let mut output = output;
        if output.len() > MAX_OUTPUT {
            let mut cut = MAX_OUTPUT;
            while !output.is_char_boundary(cut) {
                cut -= 1;
            }
            output.truncate(cut);
        }
        HealthLogEntry {
            start,
            end: vmrun_shim::now_rfc3339(),
            exit_code,
            output,
        }
    }

    async fn health_exec(
        self: &Arc<Self>,
        id: &str,
        cmd: &[String],
    ) -> Result<(i32, String), EngineError> {
        let spec = ExecSpec {
            id: String::new(),
            cmd: cmd.to_vec(),
            env: Vec::new(),
            workdir: None,
            user: None,
            tty: false,
            open_stdin: false,
            privileged: false,
            console_size: None,
        };
        let attach = AttachOptions {
            stdin: false,
            stdout: true,
            stderr: true,
        };
        let exec_id = self.exec_create(id, spec, attach)?;
        let io = self.exec_start(&exec_id, false).await?;
        let mut raw = Vec::new();
        if let Some(mut io) = io {
            let _ = io.read_to_end(&mut raw).await;
        }
        self.exec_settle(&exec_id).await;
        let code = self.exec_get(&exec_id)?.exit_code.unwrap_or(-1);
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&exec_id);
        Ok((code, demux(&raw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(retries: u32) -> HealthCheck {
        HealthCheck {
            cmd: vec!["true".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries,
            start_period: Duration::ZERO,
            start_interval: Duration::from_secs(1),
        }
    }

    fn run(code: i64) -> HealthLogEntry {
        HealthLogEntry {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn streaks_and_log() {
        let c = check(2);
        let mut s = HealthState {
            status: "starting".into(),
            ..Default::default()
        };
        record_run(&mut s, run(1), &c, false);
        assert_eq!((s.status.as_str(), s.failing_streak), ("starting", 1));
        record_run(&mut s, run(1), &c, false);
        assert_eq!((s.status.as_str(), s.failing_streak), ("unhealthy", 2));
        record_run(&mut s, run(0), &c, false);
        assert_eq!((s.status.as_str(), s.failing_streak), ("healthy", 0));
        for _ in 0..4 {
            record_run(&mut s, run(1), &c, false);
        }
        assert_eq!(s.log.len(), 5);
        // Inside the start period failures do not count while starting.
        let mut s = HealthState {
            status: "starting".into(),
            ..Default::default()
        };
        record_run(&mut s, run(1), &c, true);
        assert_eq!(s.failing_streak, 0);
    }

    #[test]
    fn configs_parse_and_merge_like_dockerd() {
        let shell = HealthCheck::from_config(
            &json!({"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 2_000_000_000u64}),
        )
        .unwrap();
        assert_eq!(shell.cmd, ["/bin/sh", "-c", "wget -q localhost"]);
        assert_eq!(shell.interval, Duration::from_secs(2));
        assert_eq!(shell.timeout, DEFAULT_TIMEOUT);
        assert_eq!(shell.retries, 3);
        assert!(HealthCheck::from_config(&json!({"Test": ["NONE"]})).is_none());
        let image = json!({"Test": ["CMD", "check"], "Interval": 5, "Retries": 4});
        let merged = merge(Some(&json!({"Interval": 7})), Some(&image)).unwrap();
        assert_eq!(merged["Test"], json!(["CMD", "check"]));
        assert_eq!(merged["Interval"], 7);
        assert_eq!(merged["Retries"], 4);
        assert!(validate(Some(&json!({"Interval": 5}))).is_err());
        assert_eq!(demux(&[1, 0, 0, 0, 0, 0, 0, 2, b'o', b'k']), "ok");
    }
}
