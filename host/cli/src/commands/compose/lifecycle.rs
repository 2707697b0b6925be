//! `down`, `stop`, `start` and `restart` on a project's containers, found by label,
//! dependents before their dependencies when stopping.

use vmrun_compose::{start_order, Project};

use super::containers::{self, progress, ProjectContainer, Which};
use crate::api::Api;
use crate::commands::fail;
use crate::error::CliResult;

/// Arguments of `compose down`.
#[derive(Debug, Clone, clap::Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section of the Compose file
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long)]
    pub timeout: Option<i32>,
    /// Remove containers for services not defined in the Compose file (always done)
    #[arg(long)]
    pub remove_orphans: bool,
}

/// Arguments of `compose stop` and `compose restart`.
#[derive(Debug, Clone, clap::Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long)]
    pub timeout: Option<i32>,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// Arguments of commands that take only services.
#[derive(Debug, Clone, clap::Args)]
pub struct ServicesArgs {
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `list` with dependents first (reverse start order), when the project is known.
fn stop_order(project: Option<&Project>, mut list: Vec<ProjectContainer>) -> Vec<ProjectContainer> {
    if let Some(order) = project.and_then(|p| start_order(p, "").ok()) {
        let rank = |c: &ProjectContainer| {
            order
                .iter()
                .position(|s| *s == c.service)
                .unwrap_or(usize::MAX)
        };
        list.sort_by_key(|c| std::cmp::Reverse(rank(c)));
    }
    list
}

/// `vmrun compose down`: every container of the project (`run` ones too) stopped and
/// removed, then its networks, and with `-v` its volumes.
pub async fn down(
    api: &Api,
    name: &str,
    project: Option<&Project>,
    args: &DownArgs,
) -> CliResult<i32> {
    let list = containers::list(api, name, Which::Everything, &[]).await?;
    for c in stop_order(project, list) {
        containers::stop_and_remove(api, &c, args.timeout).await?;
    }
    let (mut networks, volumes) = super::resources::labelled(api, name).await?;
    if let Some(p) = project {
        for n in p.networks.values().filter(|n| !n.external) {
            if !networks.contains(&n.name)
                && api.docker.inspect_network(&n.name, None).await.is_ok()
            {
                networks.push(n.name.clone());
            }
        }
    }
    for network in networks {
        api.docker.remove_network(&network).await.map_err(fail)?;
        progress("Network", &network, "Removed");
    }
    if args.volumes {
        for volume in volumes {
            api.docker
                .remove_volume(
                    &volume,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
                .map_err(fail)?;
            progress("Volume", &volume, "Removed");
        }
    }
    Ok(0)
}

/// `vmrun compose stop`.
pub async fn stop(
    api: &Api,
    name: &str,
    project: Option<&Project>,
    args: &StopArgs,
) -> CliResult<i32> {
    let list = containers::list(api, name, Which::Running, &args.services).await?;
    for c in stop_order(project, list) {
        containers::stop(api, &c, args.timeout).await?;
    }
    Ok(0)
}

/// `vmrun compose start`: stopped service containers started, dependencies first.
pub async fn start(
    api: &Api,
    name: &str,
    project: Option<&Project>,
    args: &ServicesArgs,
) -> CliResult<i32> {
    let list = containers::list(api, name, Which::Services, &args.services).await?;
    let mut list = stop_order(project, list);
    list.reverse();
    for c in list.iter().filter(|c| !c.running()) {
        api.docker
            .start_container(&c.id, None)
            .await
            .map_err(fail)?;
        progress("Container", &c.name, "Started");
    }
    Ok(0)
}

/// `vmrun compose restart`.
pub async fn restart(
    api: &Api,
    name: &str,
    project: Option<&Project>,
    args: &StopArgs,
) -> CliResult<i32> {
    let list = containers::list(api, name, Which::Services, &args.services).await?;
    let mut list = stop_order(project, list);
    list.reverse();
    for c in list {
        let mut opts = bollard::query_parameters::RestartContainerOptionsBuilder::new();
        if let Some(t) = args.timeout {
            opts = opts.t(t);
        }
        api.docker
            .restart_container(&c.id, Some(opts.build()))
            .await
            .map_err(fail)?;
        progress("Container", &c.name, "Restarted");
    }
    Ok(0)
}
