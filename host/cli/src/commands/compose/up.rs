//! `vmrun compose up`: networks and volumes, images, then each service in dependency
//! order once its dependencies reached their `depends_on` condition, converged to its
//! configuration: a container whose config hash still matches is left as it is (started
//! if stopped), one whose hash differs is recreated, missing numbers are created and
//! numbers above the scale removed. Without `-d` it then follows the logs.

use std::collections::BTreeMap;
use std::time::Duration;

use vmrun_compose::model::Condition;
use vmrun_compose::{config_hash, with_dependencies, Project, Service};

use super::containers::{self, progress, ProjectContainer, Which};
use super::create::{container_body, create_container, Overrides};
use super::resources::{ensure_images, ensure_networks, ensure_volumes};
use crate::api::Api;
use crate::commands::fail;
use crate::error::{CliError, CliResult};

/// Arguments of `compose up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Detached mode: run containers in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Build images before starting containers
    #[arg(long)]
    pub build: bool,
    /// Recreate containers even if their configuration has not changed
    #[arg(long)]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them
    #[arg(long, conflicts_with = "force_recreate")]
    pub no_recreate: bool,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Scale SERVICE to NUM instances (SERVICE=NUM)
    #[arg(long = "scale")]
    pub scale: Vec<String>,
    /// Use this timeout in seconds for container shutdown when recreating
    #[arg(short = 't', long)]
    pub timeout: Option<i32>,
    /// Services to start (default: all)
    pub services: Vec<String>,
}

/// How `up` (and `run` for dependencies) converges services.
#[derive(Debug, Clone, Default)]
pub struct Converge {
    /// Build images first.
    pub build: bool,
    /// Recreate even unchanged containers.
    pub force_recreate: bool,
    /// Never recreate.
    pub no_recreate: bool,
    /// Replica counts from `--scale`.
    pub scale: BTreeMap<String, u32>,
    /// Stop timeout when recreating.
    pub timeout: Option<i32>,
}

/// Parses `--scale SERVICE=NUM` values.
pub fn parse_scale(values: &[String]) -> CliResult<BTreeMap<String, u32>> {
    values
        .iter()
        .map(|v| {
            v.split_once('=')
                .and_then(|(s, n)| Some((s.to_owned(), n.parse().ok()?)))
                .ok_or_else(|| {
                    CliError::new(1, format!("invalid --scale value {v:?}: use SERVICE=NUM"))
                })
        })
        .collect()
}

/// `vmrun compose up`.
pub async fn up(api: &Api, project: &Project, args: &UpArgs) -> CliResult<i32> {
    let converge = Converge {
        build: args.build,
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        scale: parse_scale(&args.scale)?,
        timeout: args.timeout,
    };
    for name in converge.scale.keys() {
        if !project.services.contains_key(name) {
            return Err(CliError::new(1, format!("no such service: {name}")));
        }
    }
    let names = with_dependencies(project, &args.services, args.no_deps);
    bring_up(api, project, &names, &converge).await?;
    if args.detach {
        return Ok(0);
    }
    super::logs::follow_until_stopped(api, project, &names).await
}

/// Networks, volumes, images, then each of `names` (in start order) converged.
pub async fn bring_up(
    api: &Api,
    project: &Project,
    names: &[String],
    converge: &Converge,
) -> CliResult<()> {
    ensure_networks(api, project).await?;
    ensure_volumes(api, project).await?;
    ensure_images(api, project, names, converge.build).await?;
    for name in names {
        let Some(service) = project.services.get(name) else {
            continue;
        };
        wait_for_dependencies(api, project, service).await?;
        converge_service(api, project, service, converge).await?;
    }
    Ok(())
}

async fn converge_service(
    api: &Api,
    project: &Project,
    service: &Service,
    converge: &Converge,
) -> CliResult<()> {
    let hash = config_hash(service);
    let existing = containers::list(
        api,
        &project.name,
        Which::Services,
        std::slice::from_ref(&service.name),
    )
    .await?;
    let wanted = converge
        .scale
        .get(&service.name)
        .copied()
        .unwrap_or(service.replicas);
    for surplus in existing
        .iter()
        .filter(|c| c.number > wanted || c.number == 0)
    {
        containers::stop_and_remove(api, surplus, converge.timeout).await?;
    }
    for number in 1..=wanted {
        let current = existing.iter().find(|c| c.number == number);
        match current {
            Some(c)
                if !converge.no_recreate && (converge.force_recreate || c.config_hash != hash) =>
            {
                containers::stop_and_remove(api, c, converge.timeout).await?;
                let id = create(api, project, service, number).await?;
                start(
                    api,
                    &id,
                    &project.container_name(service, number),
                    "Recreated",
                )
                .await?;
            }
            Some(c) if !c.running() => start(api, &c.id, &c.name, "Started").await?,
            Some(c) => progress("Container", &c.name, "Running"),
            None => {
                let id = create(api, project, service, number).await?;
                start(
                    api,
                    &id,
                    &project.container_name(service, number),
                    "Started",
                )
                .await?;
            }
        }
    }
    Ok(())
}

async fn create(api: &Api, project: &Project, service: &Service, number: u32) -> CliResult<String> {
    let name = project.container_name(service, number);
    let (body, later) = container_body(project, service, number, &Overrides::default())?;
    let id = create_container(api, &name, body, later).await?;
    progress("Container", &name, "Created");
    Ok(id)
}

async fn start(api: &Api, id: &str, name: &str, what: &str) -> CliResult<()> {
    api.docker.start_container(id, None).await.map_err(fail)?;
    progress("Container", name, what);
    Ok(())
}

/// Waits until every dependency of `service` reached its condition.
pub async fn wait_for_dependencies(
    api: &Api,
    project: &Project,
    service: &Service,
) -> CliResult<()> {
    for (dep, how) in &service.depends_on {
        if how.condition == Condition::ServiceStarted || !project.services.contains_key(dep) {
            continue;
        }
        let mut announced = false;
        loop {
            let list = containers::list(
                api,
                &project.name,
                Which::Services,
                std::slice::from_ref(dep),
            )
            .await?;
            let name = list
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_else(|| dep.clone());
            if !announced {
                progress("Container", &name, "Waiting");
                announced = true;
            }
            if reached(api, &list, how.condition).await? {
                progress("Container", &name, condition_word(how.condition));
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

fn condition_word(condition: Condition) -> &'static str {
    match condition {
        Condition::ServiceHealthy => "Healthy",
        Condition::ServiceCompletedSuccessfully => "Exited",
        Condition::ServiceStarted => "Started",
    }
}

/// Whether all of `list` reached `condition`; an error when one never can (unhealthy,
/// no health check, exited with a failure).
async fn reached(api: &Api, list: &[ProjectContainer], condition: Condition) -> CliResult<bool> {
    if list.is_empty() {
        return Ok(false);
    }
    for c in list {
        let inspected = api
            .docker
            .inspect_container(&c.id, None)
            .await
            .map_err(fail)?;
        let state = inspected.state.unwrap_or_default();
        // A container the engine will restart is not given up on when it exits.
        let restarts = inspected
            .host_config
            .and_then(|h| h.restart_policy)
            .and_then(|p| p.name)
            .is_some_and(|n| !matches!(n.to_string().as_str(), "" | "no"));
        match condition {
            Condition::ServiceHealthy => {
                let status = state.status.map(|s| s.to_string()).unwrap_or_default();
                if (status == "exited" && !restarts) || status == "dead" {
                    let code = state.exit_code.unwrap_or(0);
                    return Err(CliError::new(
                        1,
                        format!(
                            "dependency failed to start: container {} exited ({code})",
                            c.name
                        ),
                    ));
                }
                let Some(health) = state.health else {
                    return Err(CliError::new(1, format!("dependency failed to start: container {} has no healthcheck configured", c.name)));
                };
                match health.status.map(|s| s.to_string()).as_deref() {
                    Some("healthy") => {}
                    Some("unhealthy") => {
                        return Err(CliError::new(
                            1,
                            format!(
                                "dependency failed to start: container {} is unhealthy",
                                c.name
                            ),
                        ))
                    }
                    _ => return Ok(false),
                }
            }
            Condition::ServiceCompletedSuccessfully => {
                let created = state.status.map(|s| s.to_string()).as_deref() == Some("created");
                if state.running == Some(true) || created {
                    return Ok(false);
                }
                let code = state.exit_code.unwrap_or(0);
                if code != 0 {
                    return Err(CliError::new(
                        1,
                        format!(
                            "service \"{}\" didn't complete successfully: exit {code}",
                            c.service
                        ),
                    ));
                }
            }
            Condition::ServiceStarted => {}
        }
    }
    Ok(true)
}
