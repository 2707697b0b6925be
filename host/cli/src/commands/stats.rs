//! `vmrun stats`: CPU, memory, network, block I/O and PIDs per container.

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::{ListContainersOptionsBuilder, StatsOptionsBuilder};
use futures::StreamExt;

use serde_json::{json, Value};

use super::{fail, print_text};
use crate::api::Api;
use crate::error::{daemon_message, status_code, CliError, CliResult};
use crate::format::containers::short_id;
use crate::format::human::{bytes_size, human_size_with_precision};
use crate::format::OutputFormat;

/// Docker's default `stats` table.
pub const DEFAULT_STATS_FORMAT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// Arguments of `stats`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output: `json`, `table`, `table TEMPLATE` or a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// The containers (default: all running)
    pub containers: Vec<String>,
}

/// Column titles of the `stats` fields, for `table` formats.
pub fn stats_headers() -> Value {
    json!({
        "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

/// Parses `--format` (before any API call).
pub fn prepare(args: &StatsArgs) -> CliResult<OutputFormat> {
    OutputFormat::parse(args.format.as_deref(), DEFAULT_STATS_FORMAT)
        .map_err(|e| CliError::new(1, e.to_string()))
}

/// One row of the stats table.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRow {
    /// The container as named on the command line (or its short ID).
    pub container: String,
    /// Full container ID.
    pub id: String,
    /// Container name.
    pub name: String,
    /// CPU usage in percent of one CPU times the CPU count.
    pub cpu_percent: f64,
    /// Memory in use (without page cache).
    pub mem_usage: f64,
    /// Memory limit.
    pub mem_limit: f64,
    /// Network bytes received and sent.
    pub net: (f64, f64),
    /// Block bytes read and written.
    pub block: (f64, f64),
    /// Number of PIDs.
    pub pids: u64,
}

/// Computes a row from one stats sample (which carries the previous CPU
/// sample in `precpu_stats`), like docker's `calculateCPUPercentUnix` and
/// `calculateMemUsageUnixNoCache`.
pub fn stats_row(s: &ContainerStatsResponse) -> StatsRow {
    let cpu = s.cpu_stats.clone().unwrap_or_default();
    let pre = s.precpu_stats.clone().unwrap_or_default();
    let total = |c: &bollard::models::ContainerCpuStats| {
        c.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0) as f64
    };
    let cpu_delta = total(&cpu) - total(&pre);
    let system_delta =
        cpu.system_cpu_usage.unwrap_or(0) as f64 - pre.system_cpu_usage.unwrap_or(0) as f64;
    let online = cpu
        .online_cpus
        .map(f64::from)
        .filter(|n| *n > 0.0)
        .unwrap_or_else(|| {
            cpu.cpu_usage
                .as_ref()
                .and_then(|u| u.percpu_usage.as_ref())
                .map(|p| p.len() as f64)
                .unwrap_or(0.0)
        });
    let cpu_percent = if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    };
    let mem = s.memory_stats.clone().unwrap_or_default();
    let usage = mem.usage.unwrap_or(0);
    let cache = mem
        .stats
        .as_ref()
        .and_then(|st| {
            st.get("total_inactive_file")
                .or_else(|| st.get("inactive_file"))
                .copied()
        })
        .filter(|c| *c < usage)
        .unwrap_or(0);
    let (mut rx, mut tx) = (0f64, 0f64);
    for n in s.networks.iter().flat_map(|m| m.values()) {
        rx += n.rx_bytes.unwrap_or(0) as f64;
        tx += n.tx_bytes.unwrap_or(0) as f64;
    }
    let (mut read, mut write) = (0f64, 0f64);
    for e in s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .into_iter()
        .flatten()
    {
        match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += e.value.unwrap_or(0) as f64,
            Some("write") => write += e.value.unwrap_or(0) as f64,
            _ => {}
        }
    }
    let name = s.name.clone().unwrap_or_default();
    let id = s.id.clone().unwrap_or_default();
    StatsRow {
        container: short_id(&id),
        id,
        name: name.strip_prefix('/').unwrap_or(&name).to_string(),
        cpu_percent,
        mem_usage: (usage - cache) as f64,
        mem_limit: mem.limit.unwrap_or(0) as f64,
        net: (rx, tx),
        block: (read, write),
        pids: s.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0),
    }
}

impl StatsRow {
    /// The row's template fields, formatted like docker's `stats` columns.
    pub fn fields(&self, trunc: bool) -> Value {
        let mem_percent = if self.mem_limit > 0.0 {
            self.mem_usage / self.mem_limit * 100.0
        } else {
            0.0
        };
        let h = |v: f64| human_size_with_precision(v, 3);
        json!({
            "BlockIO": format!("{} / {}", h(self.block.0), h(self.block.1)),
            "CPUPerc": format!("{:.2}%", self.cpu_percent),
            "Container": self.container,
            "ID": if trunc { short_id(&self.id) } else { self.id.clone() },
            "MemPerc": format!("{mem_percent:.2}%"),
            "MemUsage": format!("{} / {}", bytes_size(self.mem_usage), bytes_size(self.mem_limit)),
            "Name": self.name,
            "NetIO": format!("{} / {}", h(self.net.0), h(self.net.1)),
            "PIDs": self.pids.to_string(),
        })
    }
}

/// Renders the rows in `format` (`trunc`: short IDs).
pub fn render_stats(rows: &[StatsRow], format: &OutputFormat, trunc: bool) -> CliResult<String> {
    let values: Vec<Value> = rows.iter().map(|r| r.fields(trunc)).collect();
    format
        .render(&values, &stats_headers())
        .map_err(|e| CliError::new(1, e.to_string()))
}

async fn sample(api: &Api, name: &str) -> Result<ContainerStatsResponse, bollard::errors::Error> {
    let opts = StatsOptionsBuilder::new()
        .stream(false)
        .one_shot(false)
        .build();
    let mut stream = api.docker.stats(name, Some(opts));
    match stream.next().await {
        Some(r) => r,
        None => Err(bollard::errors::Error::DockerStreamError {
            error: format!("no stats for {name}"),
        }),
    }
}

/// `vmrun stats`: with `--no-stream` one sample per container, else a
/// screen refreshed with each new sample. Named containers that cannot be
/// sampled fail the command before anything is printed, like docker.
pub async fn stats(api: &Api, args: &StatsArgs, format: &OutputFormat) -> CliResult<i32> {
    loop {
        let names: Vec<String> = if args.containers.is_empty() {
            let opts = ListContainersOptionsBuilder::new().all(args.all).build();
            let list = api.docker.list_containers(Some(opts)).await.map_err(fail)?;
            list.into_iter().filter_map(|c| c.id).collect()
        } else {
            args.containers.clone()
        };
        let samples = futures::future::join_all(names.iter().map(|n| sample(api, n))).await;
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        for (name, s) in names.iter().zip(samples) {
            match s {
                Ok(s) => {
                    let mut row = stats_row(&s);
                    if !args.containers.is_empty() {
                        row.container = name.clone();
                    }
                    rows.push(row);
                }
                // A container listed a moment ago may be gone by now.
                Err(e) if args.containers.is_empty() && status_code(&e) == Some(404) => {}
                Err(e) => errors.push(daemon_message(&e)),
            }
        }
        if !errors.is_empty() {
            return Err(CliError::new(1, errors.join("\n")));
        }
        let table = render_stats(&rows, format, !args.no_trunc)?;
        if args.no_stream {
            print_text(&table);
            return Ok(0);
        }
        print_text(&format!("\x1b[2J\x1b[H{table}"));
        if names.is_empty() {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats, ContainerPidsStats,
    };

    #[test]
    fn computes_like_docker() {
        let s = ContainerStatsResponse {
            id: Some("0123456789abcdef".into()),
            name: Some("/web".into()),
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(300),
                    ..Default::default()
                }),
                system_cpu_usage: Some(2000),
                online_cpus: Some(2),
                ..Default::default()
            }),
            precpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(100),
                    ..Default::default()
                }),
                system_cpu_usage: Some(1000),
                online_cpus: Some(2),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(3 * 1024 * 1024),
                limit: Some(100 * 1024 * 1024),
                stats: Some([("total_inactive_file".to_string(), 1024 * 1024)].into()),
                ..Default::default()
            }),
            pids_stats: Some(ContainerPidsStats {
                current: Some(3),
                limit: None,
            }),
            ..Default::default()
        };
        let row = stats_row(&s);
        assert_eq!(row.id, "0123456789abcdef");
        assert_eq!(row.container, "0123456789ab");
        assert_eq!(row.name, "web");
        assert!((row.cpu_percent - 40.0).abs() < 1e-9);
        assert_eq!(row.mem_usage, 2.0 * 1024.0 * 1024.0);
        let json = render_stats(std::slice::from_ref(&row), &OutputFormat::Json, true).unwrap();
        assert_eq!(
            json,
            "{\"BlockIO\":\"0B / 0B\",\"CPUPerc\":\"40.00%\",\"Container\":\"0123456789ab\",\"ID\":\"0123456789ab\",\"MemPerc\":\"2.00%\",\"MemUsage\":\"2MiB / 100MiB\",\"Name\":\"web\",\"NetIO\":\"0B / 0B\",\"PIDs\":\"3\"}\n"
        );
        let custom =
            OutputFormat::parse(Some("{{.Name}} {{.ID}} {{.PIDs}}"), DEFAULT_STATS_FORMAT).unwrap();
        assert_eq!(
            render_stats(std::slice::from_ref(&row), &custom, false).unwrap(),
            "web 0123456789abcdef 3\n"
        );
        let default = OutputFormat::parse(None, DEFAULT_STATS_FORMAT).unwrap();
        let table = render_stats(&[row], &default, true).unwrap();
        assert_eq!(
            table,
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS\n\
0123456789ab   web       40.00%    2MiB / 100MiB       2.00%     0B / 0B   0B / 0B     3\n"
        );
    }
}
