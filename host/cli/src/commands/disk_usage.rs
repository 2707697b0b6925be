//! `vmrun system …`: `df` (disk usage, docker's summary table) and `info`.

use serde_json::{json, Value};

use super::{fail, print_text};
use crate::api::Api;
use crate::cli::Command;
use crate::error::{CliError, CliResult};
use crate::format::human::human_size;
use crate::format::OutputFormat;

/// Docker's default `system df` table.
pub const DEFAULT_DF_FORMAT: &str =
    "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";

/// `system` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SystemCommand {
    /// Show docker disk usage
    Df(DfArgs),
    /// Display system-wide information
    Info,
}

impl SystemCommand {
    /// The top-level command this is the long form of; `Err` for `df`.
    pub fn as_command(self) -> Result<Command, DfArgs> {
        match self {
            SystemCommand::Info => Ok(Command::Info),
            SystemCommand::Df(a) => Err(a),
        }
    }
}

/// Arguments of `system df`.
#[derive(Debug, Clone, clap::Args)]
pub struct DfArgs {
    /// Format output: `json`, `table`, `table TEMPLATE` or a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// Parses `--format` (before any API call).
pub fn prepare(args: &DfArgs) -> CliResult<OutputFormat> {
    if args.verbose
        && !matches!(
            args.format.as_deref().map(str::trim),
            None | Some("" | "table")
        )
    {
        return Err(CliError::new(
            1,
            "system df --verbose prints docker's tables only; use --format without --verbose",
        ));
    }
    OutputFormat::parse(args.format.as_deref(), DEFAULT_DF_FORMAT)
        .map_err(|e| CliError::new(1, e.to_string()))
}

/// `vmrun system df [-v]`.
pub async fn df(api: &Api, args: &DfArgs, format: &OutputFormat) -> CliResult<i32> {
    let usage = api.get_json("/system/df").await.map_err(fail)?;
    if args.verbose {
        let text = super::disk_usage_verbose::verbose_text(&usage, super::now_unix())
            .map_err(|e| CliError::new(1, e.to_string()))?;
        print_text(&text);
        return Ok(0);
    }
    let headers = json!({
        "Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
        "Reclaimable": "RECLAIMABLE",
    });
    let text = format
        .render(&df_rows(&usage), &headers)
        .map_err(|e| CliError::new(1, e.to_string()))?;
    print_text(&text);
    Ok(0)
}

/// The four summary rows, computed as docker's CLI does (`formatter/disk_usage.go`).
pub fn df_rows(usage: &Value) -> Vec<Value> {
    let list = |key: &str| usage[key].as_array().cloned().unwrap_or_default();
    let int = |v: &Value| v.as_i64().unwrap_or(0);

    let images = list("Images");
    let layers_size = int(&usage["LayersSize"]);
    let active_images: Vec<&Value> = images
        .iter()
        .filter(|i| int(&i["Containers"]) > 0)
        .collect();
    let used: i64 = active_images
        .iter()
        .filter(|i| int(&i["Size"]) != -1 && int(&i["SharedSize"]) != -1)
        .map(|i| int(&i["Size"]) - int(&i["SharedSize"]))
        .sum();

    let containers = list("Containers");
    let size_rw = |c: &Value| int(&c["SizeRw"]).max(0);
    let containers_size: i64 = containers.iter().map(size_rw).sum();
    let running = |c: &&Value| c["State"].as_str() == Some("running");
    let containers_reclaimable: i64 = containers.iter().filter(|c| !running(c)).map(size_rw).sum();

    let volumes = list("Volumes");
    let volume_size = |v: &Value| int(&v["UsageData"]["Size"]).max(0);
    let volumes_size: i64 = volumes.iter().map(volume_size).sum();
    let volumes_active = volumes
        .iter()
        .filter(|v| int(&v["UsageData"]["RefCount"]) > 0)
        .count();
    let volumes_reclaimable: i64 = volumes
        .iter()
        .filter(|v| int(&v["UsageData"]["RefCount"]) == 0)
        .map(volume_size)
        .sum();

    vec![
        row(
            "Images",
            images.len(),
            active_images.len(),
            layers_size,
            layers_size - used,
        ),
        row(
            "Containers",
            containers.len(),
            containers.iter().filter(running).count(),
            containers_size,
            containers_reclaimable,
        ),
        row(
            "Local Volumes",
            volumes.len(),
            volumes_active,
            volumes_size,
            volumes_reclaimable,
        ),
        row("Build Cache", 0, 0, 0, 0),
    ]
}

fn row(kind: &str, total: usize, active: usize, size: i64, reclaimable: i64) -> Value {
    let reclaimable = if size > 0 {
        format!(
            "{} ({}%)",
            human_size(reclaimable as f64),
            reclaimable * 100 / size
        )
    } else {
        human_size(reclaimable as f64)
    };
    json!({
        "Type": kind,
        "TotalCount": total.to_string(),
        "Active": active.to_string(),
        "Size": human_size(size as f64),
        "Reclaimable": reclaimable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_like_docker() {
        let usage = json!({
            "LayersSize": 2_000_000,
            "Images": [
                {"Size": 1_500_000, "SharedSize": 500_000, "Containers": 1},
                {"Size": 1_000_000, "SharedSize": 500_000, "Containers": 0},
            ],
            "Containers": [
                {"State": "running", "SizeRw": 10},
                {"State": "exited", "SizeRw": 30},
            ],
            "Volumes": [{"UsageData": {"Size": 4096, "RefCount": 0}}],
        });
        let rows = df_rows(&usage);
        assert_eq!(rows[0]["TotalCount"], "2");
        assert_eq!(rows[0]["Active"], "1");
        assert_eq!(rows[0]["Size"], "2MB");
        assert_eq!(rows[0]["Reclaimable"], "1MB (50%)");
        assert_eq!(rows[1]["Size"], "40B");
        assert_eq!(rows[1]["Reclaimable"], "30B (75%)");
        assert_eq!(rows[2]["Reclaimable"], "4.096kB (100%)");
        assert_eq!(rows[3]["Size"], "0B");
        assert_eq!(rows[3]["Reclaimable"], "0B");
    }
}
