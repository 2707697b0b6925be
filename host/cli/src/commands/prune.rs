//! `vmrun container prune`, `vmrun network prune` and `vmrun volume prune`: docker's
//! question (unless `-f`), `--filter`, and docker's report of what went.

use std::collections::HashMap;

use bollard::query_parameters::{
    PruneContainersOptionsBuilder, PruneNetworksOptionsBuilder, PruneVolumesOptionsBuilder,
};
use serde_json::Value;

use super::image::confirm;
use super::{fail, print_text};
use crate::api::Api;
use crate::error::{CliError, CliResult};
use crate::format::human::human_size;
use crate::opts::filters::parse_filters;

/// Flags every prune takes.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneFlags {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. `until=<timestamp>`, `label=<key>=<value>`)
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

/// `container` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ContainerCommand {
    /// Remove all stopped containers
    Prune(PruneFlags),
}

/// What is pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Stopped containers.
    Containers,
    /// Unused user networks.
    Networks,
    /// Unused volumes; `true`: named ones too (`-a`).
    Volumes(bool),
}

impl Kind {
    fn warning(self) -> &'static str {
        match self {
            Kind::Containers => "WARNING! This will remove all stopped containers.",
            Kind::Networks => {
                "WARNING! This will remove all custom networks not used by at least one container."
            }
            Kind::Volumes(false) => {
                "WARNING! This will remove anonymous local volumes not used by at least one container."
            }
            Kind::Volumes(true) => {
                "WARNING! This will remove all local volumes not used by at least one container."
            }
        }
    }
}

/// Runs one prune and prints docker's report.
pub async fn prune(api: &Api, kind: Kind, flags: &PruneFlags) -> CliResult<i32> {
    let mut filters: HashMap<String, Vec<String>> = parse_filters(&flags.filter)?;
    if kind == Kind::Volumes(true) {
        filters.insert("all".into(), vec!["true".into()]);
    }
    if !flags.force && !confirm(kind.warning())? {
        return Ok(0);
    }
    let report = match kind {
        Kind::Containers => to_value(
            api.docker
                .prune_containers(Some(
                    PruneContainersOptionsBuilder::new()
                        .filters(&filters)
                        .build(),
                ))
                .await
                .map_err(fail)?,
        )?,
        Kind::Networks => to_value(
            api.docker
                .prune_networks(Some(
                    PruneNetworksOptionsBuilder::new().filters(&filters).build(),
                ))
                .await
                .map_err(fail)?,
        )?,
        Kind::Volumes(_) => to_value(
            api.docker
                .prune_volumes(Some(
                    PruneVolumesOptionsBuilder::new().filters(&filters).build(),
                ))
                .await
                .map_err(fail)?,
        )?,
    };
    print_text(&report_text(kind, &report));
    Ok(0)
}

fn to_value<T: serde::Serialize>(report: T) -> CliResult<Value> {
    serde_json::to_value(report)
        .map_err(|e| CliError::new(1, format!("reading the prune report: {e}")))
}

/// Docker's report: `Deleted Containers:` (`Networks`, `Volumes`) with one line each and
/// a blank line, then `Total reclaimed space: …` (not for networks).
pub fn report_text(kind: Kind, report: &Value) -> String {
    let (title, key) = match kind {
        Kind::Containers => ("Deleted Containers:", "ContainersDeleted"),
        Kind::Networks => ("Deleted Networks:", "NetworksDeleted"),
        Kind::Volumes(_) => ("Deleted Volumes:", "VolumesDeleted"),
    };
    let mut out = String::new();
    if let Some(items) = report[key].as_array().filter(|a| !a.is_empty()) {
        out.push_str(title);
        out.push('\n');
        for item in items {
            out.push_str(item.as_str().unwrap_or_default());
            out.push('\n');
        }
        out.push('\n');
    }
    if kind != Kind::Networks {
        let reclaimed = report["SpaceReclaimed"].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "Total reclaimed space: {}\n",
            human_size(reclaimed as f64)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_like_docker() {
        let r = serde_json::json!({"ContainersDeleted": ["abc", "def"], "SpaceReclaimed": 2048});
        assert_eq!(
            report_text(Kind::Containers, &r),
            "Deleted Containers:\nabc\ndef\n\nTotal reclaimed space: 2.048kB\n"
        );
        let r = serde_json::json!({"NetworksDeleted": ["n1"]});
        assert_eq!(report_text(Kind::Networks, &r), "Deleted Networks:\nn1\n\n");
        let r = serde_json::json!({"VolumesDeleted": null, "SpaceReclaimed": 0});
        assert_eq!(
            report_text(Kind::Volumes(false), &r),
            "Total reclaimed space: 0B\n"
        );
    }
}
