//! Commands on the container's cgroup: ps, events (usage), pause, resume,
//! update.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::json;
use vmrun_runtime::{CgroupStats, Runtime, Status};

use crate::cli::OutputFormat;

/// `ps`: JSON, the pids; table, the lines of `ps <args>` (default `-ef`)
/// whose PID column is one of the container's processes, like runc.
pub(crate) fn ps(
    runtime: &Runtime,
    id: &str,
    format: OutputFormat,
    args: &[String],
) -> Result<i32> {
    let pids: Vec<i32> = runtime.pids(id)?.iter().map(|p| p.as_raw()).collect();
    if format == OutputFormat::Json {
        crate::out!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let output = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("running ps")?;
    if !output.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(column) = header.split_whitespace().position(|h| h == "PID") else {
        bail!("ps {}: no PID column", args.join(" "));
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{header}")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(0)
}

/// runc's `stats` event: the counters this runtime reads, in runc's names.
fn stats_event(id: &str, s: &CgroupStats) -> serde_json::Value {
    json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": {
                "usage": {
                    "total": s.cpu_usage_ns,
                    "kernel": s.cpu_system_ns,
                    "user": s.cpu_user_ns,
                },
                "throttling": {},
            },
            "memory": {
                "cache": s.memory_cache,
                "usage": {
                    "usage": s.memory_usage,
                    "max": s.memory_max_usage,
                    "limit": s.memory_limit.unwrap_or(u64::MAX),
                    "failcnt": 0,
                },
                "raw": { "oom_kill": s.oom_kill_count },
            },
            "pids": {
                "current": s.pids_current,
                "limit": s.pids_limit.unwrap_or(0),
            },
            "blkio": {},
            "hugetlb": {},
        },
    })
}

/// A Go duration (`5s`, `500ms`, `1m30s`), as runc's `--interval` takes.
pub(crate) fn parse_go_duration(s: &str) -> Result<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        bail!("invalid duration {s:?}");
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits]
            .parse()
            .with_context(|| format!("invalid duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => bail!("invalid duration {s:?}: unknown unit"),
        };
        total += Duration::from_secs_f64(number * scale);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// `events`: with `--stats` one usage event; else one every `interval`
/// until the container stops.
pub(crate) fn events(runtime: &Runtime, id: &str, once: bool, interval: &str) -> Result<i32> {
    let interval = parse_go_duration(interval)?;
    if interval.is_zero() && !once {
        bail!("--interval must be greater than 0");
    }
    loop {
        let container = runtime.load(id)?;
        if container.status() == Status::Stopped {
            if once {
                bail!("container not running: {id} is stopped");
            }
            return Ok(0);
        }
        let stats = runtime.stats(id)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", stats_event(id, &stats))?;
        out.flush()?;
        if once {
            return Ok(0);
        }
        std::thread::sleep(interval);
    }
}

pub(crate) fn pause(runtime: &Runtime, id: &str) -> Result<i32> {
    runtime.pause(id)?;
    Ok(0)
}

pub(crate) fn resume(runtime: &Runtime, id: &str) -> Result<i32> {
    runtime.resume(id)?;
    Ok(0)
}

/// `update --resources FILE|-`: new limits, as OCI `linux.resources` JSON.
pub(crate) fn update(runtime: &Runtime, id: &str, resources: &Path) -> Result<i32> {
    let text = if resources == Path::new("-") {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)?;
        text
    } else {
        std::fs::read(resources).with_context(|| format!("reading {}", resources.display()))?
    };
    let resources: LinuxResources =
        serde_json::from_slice(&text).context("malformed resources JSON")?;
    runtime.update(id, &resources)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("3x").is_err());
    }
}
