//! `vmrun network create|ls|rm|inspect`.

use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::ListNetworksOptionsBuilder;
use serde_json::json;

use super::inspect::{render, InspectFormat};
use super::{fail, for_each_name, print_text};
use crate::api::{raw, Api};
use crate::error::{daemon_message, status_code, CliError, CliResult};
use crate::format::containers::short_id;
use crate::format::OutputFormat;

/// Docker's default `network ls` table.
pub const DEFAULT_NETWORK_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

/// `network` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create {
        /// Driver to manage the network
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        /// The network name
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Format output: `json` or a Go template
        #[arg(long)]
        format: Option<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        /// The networks
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Display detailed information on one or more networks
    Inspect {
        /// Format output: `json` or a Go template
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// The networks
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Runs a `network` subcommand.
pub async fn network(api: &Api, cmd: NetworkCommand) -> CliResult<i32> {
    match cmd {
        NetworkCommand::Create {
            driver,
            internal,
            name,
        } => {
            let req = NetworkCreateRequest {
                name,
                driver: Some(driver),
                internal: Some(internal),
                ..Default::default()
            };
            let created = api.docker.create_network(req).await.map_err(fail)?;
            println!("{}", created.id);
            Ok(0)
        }
        NetworkCommand::Ls { quiet, format } => {
            let fmt = if quiet {
                Some("{{.ID}}")
            } else {
                format.as_deref()
            };
            let fmt = OutputFormat::parse(fmt, DEFAULT_NETWORK_FORMAT)
                .map_err(|e| CliError::new(1, e.to_string()))?;
            let mut list = api
                .docker
                .list_networks(Some(ListNetworksOptionsBuilder::new().build()))
                .await
                .map_err(fail)?;
            list.sort_by(|a, b| a.name.cmp(&b.name));
            let rows: Vec<_> = list
                .iter()
                .map(|n| {
                    json!({
                        "ID": short_id(n.id.as_deref().unwrap_or("")),
                        "Name": n.name.clone().unwrap_or_default(),
                        "Driver": n.driver.clone().unwrap_or_default(),
                        "Scope": n.scope.clone().unwrap_or_default(),
                        "Internal": n.internal.unwrap_or(false).to_string(),
                    })
                })
                .collect();
            let headers = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Internal": "INTERNAL"});
            let text = fmt
                .render(&rows, &headers)
                .map_err(|e| CliError::new(1, e.to_string()))?;
            print_text(&text);
            Ok(0)
        }
        NetworkCommand::Rm { names } => {
            for_each_name(&names, true, |name| async move {
                api.docker.remove_network(&name).await
            })
            .await
        }
        NetworkCommand::Inspect { format, names } => {
            let format = super::inspect::prepare(format.as_deref())?;
            inspect_each(api, &names, "/networks/", &format, "network").await
        }
    }
}

/// Shared by `network inspect` and `volume inspect`.
pub async fn inspect_each(
    api: &Api,
    names: &[String],
    prefix: &str,
    format: &InspectFormat,
    kind: &str,
) -> CliResult<i32> {
    let mut found = Vec::new();
    let mut failed = false;
    for name in names {
        match api
            .get_raw_json(&format!("{prefix}{}", raw::encode(name)))
            .await
        {
            Ok(v) => found.push(v),
            Err(e) if status_code(&e) == Some(404) => {
                eprintln!("Error: No such {kind}: {name}");
                failed = true;
            }
            Err(e) => {
                eprintln!("{}", daemon_message(&e));
                failed = true;
            }
        }
    }
    print_text(&render(&found, format)?);
    Ok(if failed { 1 } else { 0 })
}
