//! `vmrun volume create|ls|rm|inspect`.

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder};
use serde_json::json;

use super::network::inspect_each;
use super::{fail, for_each_name, print_text};
use crate::api::Api;
use crate::error::{CliError, CliResult};
use crate::format::OutputFormat;
use crate::opts::env::parse_labels;

/// Docker's default `volume ls` table.
pub const DEFAULT_VOLUME_FORMAT: &str = "table {{.Driver}}\t{{.Name}}";

/// `volume` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create {
        /// Volume driver name
        #[arg(short = 'd', long, default_value = "local")]
        driver: String,
        /// Set metadata for a volume
        #[arg(long = "label")]
        labels: Vec<String>,
        /// The volume name (generated when omitted)
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Format output: `json` or a Go template
        #[arg(long)]
        format: Option<String>,
    },
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes
        #[arg(short = 'f', long)]
        force: bool,
        /// The volumes
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        /// Format output: `json` or a Go template
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// The volumes
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Runs a `volume` subcommand.
pub async fn volume(api: &Api, cmd: VolumeCommand) -> CliResult<i32> {
    match cmd {
        VolumeCommand::Create {
            driver,
            labels,
            name,
        } => {
            let labels = parse_labels(&labels).map_err(CliError::usage)?;
            let req = VolumeCreateRequest {
                name,
                driver: Some(driver),
                labels: (!labels.is_empty()).then_some(labels),
                ..Default::default()
            };
            let created = api.docker.create_volume(req).await.map_err(fail)?;
            println!("{}", created.name);
            Ok(0)
        }
        VolumeCommand::Ls { quiet, format } => {
            let fmt = if quiet {
                Some("{{.Name}}")
            } else {
                format.as_deref()
            };
            let fmt = OutputFormat::parse(fmt, DEFAULT_VOLUME_FORMAT)
                .map_err(|e| CliError::new(1, e.to_string()))?;
            let resp = api
                .docker
                .list_volumes(Some(ListVolumesOptionsBuilder::new().build()))
                .await
                .map_err(fail)?;
            let mut volumes = resp.volumes.unwrap_or_default();
            volumes.sort_by(|a, b| a.name.cmp(&b.name));
            let rows: Vec<_> = volumes
                .iter()
                .map(|v| json!({"Driver": v.driver, "Name": v.name, "Mountpoint": v.mountpoint}))
                .collect();
            let headers =
                json!({"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT"});
            let text = fmt
                .render(&rows, &headers)
                .map_err(|e| CliError::new(1, e.to_string()))?;
            print_text(&text);
            Ok(0)
        }
        VolumeCommand::Rm { force, names } => {
            for_each_name(&names, true, |name| async move {
                let opts = RemoveVolumeOptionsBuilder::new().force(force).build();
                api.docker.remove_volume(&name, Some(opts)).await
            })
            .await
        }
        VolumeCommand::Inspect { format, names } => {
            let format = super::inspect::prepare(format.as_deref())?;
            inspect_each(api, &names, "/volumes/", &format, "volume").await
        }
    }
}
