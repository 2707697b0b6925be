//! `vmrun vm status|start|stop`: the daemon's shared Linux VM (like `colima status` or
//! `podman machine`), through vmrund's `/vmrun/vm` endpoints.

use clap::Subcommand;
use serde_json::Value;

use crate::api::Api;
use crate::error::{daemon_message, CliError, CliResult};

/// `vmrun vm ...`.
#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Show the shared VM: state, backend, accelerator, CPUs, memory, uptime, containers
    Status {
        /// Print the daemon's JSON instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Boot the shared VM now (it also boots on the first container that needs it)
    Start,
    /// Stop the containers running in the shared VM, then shut it down
    Stop {
        /// Seconds to wait for each container to stop before killing it
        #[arg(short = 't', long = "time", value_name = "SECONDS")]
        time: Option<i64>,
    },
}

/// Runs one `vm` command.
pub async fn vm(api: &Api, cmd: VmCommand) -> CliResult<i32> {
    let fail = |e: bollard::errors::Error| CliError::new(1, daemon_message(&e));
    match cmd {
        VmCommand::Status { json } => {
            let v = api.get_json("/vmrun/vm").await.map_err(fail)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", status_text(&v));
            }
        }
        VmCommand::Start => {
            let v = api.post_json("/vmrun/vm/start").await.map_err(fail)?;
            print!("{}", status_text(&v));
        }
        VmCommand::Stop { time } => {
            let path = match time {
                Some(t) => format!("/vmrun/vm/stop?t={t}"),
                None => "/vmrun/vm/stop".to_string(),
            };
            let v = api.post_json(&path).await.map_err(fail)?;
            print!("{}", status_text(&v));
        }
    }
    Ok(0)
}

/// The status as `Key: value` lines.
pub fn status_text(v: &Value) -> String {
    let s = |k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut out = String::new();
    let mut line = |k: &str, value: String| out.push_str(&format!("{k:<12} {value}\n"));
    line("State:", s("State"));
    line("Backend:", s("Backend"));
    line("Accelerator:", s("Accelerator"));
    line("CPUs:", s("Cpus"));
    line("Memory:", format!("{} MiB", n("MemoryMib")));
    line("Disk:", format!("{} GiB ({})", n("DiskGib"), s("DataDisk")));
    if s("State") == "running" {
        line("Uptime:", uptime(n("UptimeSeconds")));
        line("Kernel:", s("Kernel"));
        line("PID:", s("Pid"));
        line("Agent RSS:", format!("{} KiB", n("AgentRssKib")));
    }
    line("Containers:", n("Containers").to_string());
    if let Some(why) = v.get("LastExit").and_then(Value::as_str) {
        line("Last exit:", why.to_string());
    }
    out
}

fn uptime(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{}s", secs / 60, secs % 60),
        _ => format!("{}h{}m", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_name_backend_accelerator_and_size() {
        let v = serde_json::json!({
            "State": "running", "Backend": "qemu", "Accelerator": "tcg", "Cpus": 2,
            "MemoryMib": 1024, "DiskGib": 64, "DataDisk": "/d/data.ext4",
            "UptimeSeconds": 75, "Containers": 3, "Pid": 42, "Kernel": "6.1.0", "LastExit": null
        });
        let text = status_text(&v);
        for want in [
            "State:       running\n",
            "Backend:     qemu\n",
            "Accelerator: tcg\n",
            "CPUs:        2\n",
            "Memory:      1024 MiB\n",
            "Uptime:      1m15s\n",
            "Containers:  3\n",
        ] {
            assert!(text.contains(want), "{want:?} in:\n{text}");
        }
        assert!(!text.contains("Last exit"), "{text}");
    }
}
