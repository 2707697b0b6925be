//! `vmrun network create|ls|rm|inspect|connect|disconnect`.

use std::collections::HashMap;

use bollard::models::{
    EndpointSettings, Ipam, IpamConfig, Network, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest,
};
use bollard::query_parameters::ListNetworksOptionsBuilder;
use serde_json::{json, Value};

use super::inspect::{render, InspectFormat};
use super::{fail, for_each_name, print_text};
use crate::api::{raw, Api};
use crate::error::{daemon_message, CliError, CliResult};
use crate::format::containers::{go_time_string_rfc3339, short_id};
use crate::format::OutputFormat;
use crate::opts::env::parse_labels;
use crate::opts::filters::parse_filters;

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
        /// Subnet in CIDR format that represents a network segment
        #[arg(long)]
        subnet: Vec<String>,
        /// IPv4 or IPv6 gateway for the master subnet (one per --subnet)
        #[arg(long)]
        gateway: Vec<String>,
        /// Set metadata on a network
        #[arg(long = "label")]
        labels: Vec<String>,
        /// The network name
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Do not truncate the output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Provide filter values (`name=...`, `driver=bridge`...)
        #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
        filter: Vec<String>,
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
    /// Connect a container to a network
    Connect {
        /// Add network-scoped alias for the container
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// The network
        network: String,
        /// The container
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Force the container to disconnect from a network
        #[arg(short = 'f', long)]
        force: bool,
        /// The network
        network: String,
        /// The container
        container: String,
    },
    /// Remove all unused networks
    Prune(super::prune::PruneFlags),
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
            subnet,
            gateway,
            labels,
            name,
        } => {
            let ipam = ipam_config(&subnet, &gateway)?;
            let labels = parse_labels(&labels).map_err(CliError::usage)?;
            let req = NetworkCreateRequest {
                name,
                driver: Some(driver),
                internal: Some(internal),
                ipam,
                labels: (!labels.is_empty()).then_some(labels),
                ..Default::default()
            };
            let created = api.docker.create_network(req).await.map_err(fail)?;
            println!("{}", created.id);
            Ok(0)
        }
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            filter,
            format,
        } => {
            let fmt = if quiet {
                Some("{{.ID}}")
            } else {
                format.as_deref()
            };
            let fmt = OutputFormat::parse(fmt, DEFAULT_NETWORK_FORMAT)
                .map_err(|e| CliError::new(1, e.to_string()))?;
            let mut list = api
                .docker
                .list_networks(Some(
                    ListNetworksOptionsBuilder::new()
                        .filters(&parse_filters(&filter)?)
                        .build(),
                ))
                .await
                .map_err(fail)?;
            list.sort_by(|a, b| a.name.cmp(&b.name));
            let rows: Vec<_> = list.iter().map(|n| network_row(n, !no_trunc)).collect();
            let text = fmt
                .render(&rows, &network_headers())
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
        NetworkCommand::Connect {
            aliases,
            network,
            container,
        } => {
            let req = NetworkConnectRequest {
                container,
                endpoint_config: Some(EndpointSettings {
                    aliases: (!aliases.is_empty()).then_some(aliases),
                    ..Default::default()
                }),
            };
            api.docker
                .connect_network(&raw::encode(&network), req)
                .await
                .map_err(fail)?;
            Ok(0)
        }
        NetworkCommand::Disconnect {
            force,
            network,
            container,
        } => {
            let req = NetworkDisconnectRequest {
                container,
                force: Some(force),
            };
            api.docker
                .disconnect_network(&raw::encode(&network), req)
                .await
                .map_err(fail)?;
            Ok(0)
        }
        NetworkCommand::Prune(flags) => {
            super::prune::prune(api, super::prune::Kind::Networks, &flags).await
        }
        NetworkCommand::Inspect { format, names } => {
            let format = super::inspect::prepare(format.as_deref())?;
            inspect_each(api, &names, "/networks/", &format).await
        }
    }
}

/// The IPAM block of `network create`: one pool per `--subnet`, with the
/// `--gateway` of the same position.
pub fn ipam_config(subnets: &[String], gateways: &[String]) -> CliResult<Option<Ipam>> {
    if gateways.len() > subnets.len() {
        return Err(CliError::new(
            1,
            "every ip-range or gateway must have a corresponding subnet",
        ));
    }
    if subnets.is_empty() {
        return Ok(None);
    }
    let config = subnets
        .iter()
        .enumerate()
        .map(|(i, subnet)| IpamConfig {
            subnet: Some(subnet.clone()),
            gateway: gateways.get(i).cloned(),
            ..Default::default()
        })
        .collect();
    Ok(Some(Ipam {
        driver: Some("default".into()),
        config: Some(config),
        ..Default::default()
    }))
}

/// Column titles of the `network ls` fields, for `table` formats.
pub fn network_headers() -> Value {
    json!({
        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
        "CreatedAt": "CREATED AT",
    })
}

/// One `network ls` row with docker's fields (`trunc`: short IDs).
pub fn network_row(n: &Network, trunc: bool) -> Value {
    let id = n.id.clone().unwrap_or_default();
    json!({
        "CreatedAt": n.created.as_deref().map(go_time_string_rfc3339).unwrap_or_default(),
        "Driver": n.driver.clone().unwrap_or_default(),
        "ID": if trunc { short_id(&id) } else { id },
        "IPv4": n.enable_ipv4.unwrap_or(false).to_string(),
        "IPv6": n.enable_ipv6.unwrap_or(false).to_string(),
        "Internal": n.internal.unwrap_or(false).to_string(),
        "Labels": join_labels(n.labels.as_ref()),
        "Name": n.name.clone().unwrap_or_default(),
        "Scope": n.scope.clone().unwrap_or_default(),
    })
}

/// `k=v,k2=v2`, sorted by key (docker joins in map order, which is random).
pub fn join_labels(labels: Option<&HashMap<String, String>>) -> String {
    let mut pairs: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// Shared by `network inspect` and `volume inspect`: prints what was found,
/// then the daemon's error for each name that failed, like docker.
pub async fn inspect_each(
    api: &Api,
    names: &[String],
    prefix: &str,
    format: &InspectFormat,
) -> CliResult<i32> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match api
            .get_raw_json(&format!("{prefix}{}", raw::encode(name)))
            .await
        {
            Ok(v) => found.push(v),
            Err(e) => errors.push(daemon_message(&e)),
        }
    }
    print_text(&render(&found, format)?);
    if errors.is_empty() {
        return Ok(0);
    }
    Err(CliError::new(1, errors.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipam_pairs_subnets_and_gateways() {
        assert_eq!(ipam_config(&[], &[]).unwrap(), None);
        let ipam = ipam_config(&["10.9.0.0/24".into()], &["10.9.0.1".into()])
            .unwrap()
            .unwrap();
        let config = ipam.config.unwrap();
        assert_eq!(config[0].subnet.as_deref(), Some("10.9.0.0/24"));
        assert_eq!(config[0].gateway.as_deref(), Some("10.9.0.1"));
        assert!(ipam_config(&[], &["10.9.0.1".into()]).is_err());
    }

    #[test]
    fn ls_rows_have_dockers_fields() {
        let n = Network {
            id: Some("0123456789abcdef".into()),
            name: Some("n".into()),
            created: Some("2026-11-23T08:59:54.169289265Z".into()),
            labels: Some(
                [
                    ("b".to_string(), "2".to_string()),
                    ("a".to_string(), "1".to_string()),
                ]
                .into(),
            ),
            enable_ipv4: Some(true),
            ..Default::default()
        };
        let row = network_row(&n, true);
        assert_eq!(row["ID"], "0123456789ab");
        assert_eq!(row["CreatedAt"], "2026-11-23 08:59:54.169289265 +0000 UTC");
        assert_eq!(row["Labels"], "a=1,b=2");
        assert_eq!(row["IPv4"], "true");
        assert_eq!(row["IPv6"], "false");
    }
}
