//! `vmrun compose ps`: the project's containers, found by label (so docker compose's
//! containers are listed too), as a table, ids (`-q`), service names (`--services`) or
//! one JSON object per line (`--format json`).

use super::containers::{self, ProjectContainer, Which};
use crate::api::Api;
use crate::error::{CliError, CliResult};

/// Arguments of `compose ps`.
#[derive(Debug, Clone, clap::Args)]
pub struct PsArgs {
    /// Show all stopped containers
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display services
    #[arg(long)]
    pub services: bool,
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Services (default: all)
    pub service_names: Vec<String>,
}

fn json_line(project: &str, c: &ProjectContainer) -> String {
    serde_json::json!({
        "ID": c.id,
        "Name": c.name,
        "Image": c.image,
        "Command": c.command,
        "Project": project,
        "Service": c.service,
        "State": c.state,
        "Status": c.status,
        "Publishers": c.ports,
        "Labels": c.labels,
    })
    .to_string()
}

fn table(list: &[ProjectContainer]) -> String {
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|c| {
            [
                c.name.clone(),
                c.image.clone(),
                c.service.clone(),
                c.status.clone(),
                c.ports.join(", "),
            ]
        })
        .collect();
    let header = ["NAME", "IMAGE", "SERVICE", "STATUS", "PORTS"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// `vmrun compose ps`.
pub async fn ps(api: &Api, project: &str, args: &PsArgs) -> CliResult<i32> {
    let which = if args.all {
        Which::Services
    } else {
        Which::Running
    };
    let list = containers::list(api, project, which, &args.service_names).await?;
    let text = if args.services {
        let mut names: Vec<&str> = list.iter().map(|c| c.service.as_str()).collect();
        names.dedup();
        names.iter().map(|n| format!("{n}\n")).collect()
    } else if args.quiet {
        list.iter().map(|c| format!("{}\n", c.id)).collect()
    } else {
        match args.format.as_str() {
            "table" => table(&list),
            "json" => list.iter().map(|c| json_line(project, c) + "\n").collect(),
            other => {
                return Err(CliError::new(
                    1,
                    format!("unsupported format {other:?}: use table or json"),
                ))
            }
        }
    };
    crate::commands::print_text(&text);
    Ok(0)
}
