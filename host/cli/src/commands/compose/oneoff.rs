//! `vmrun compose exec` (a command in a service's running container, through the same
//! path as `vmrun exec`) and `vmrun compose run` (a one-off container of a service,
//! `<project>-<service>-run-<id>`, labelled `oneoff=True`, its dependencies brought up
//! first, attached through the same path as `vmrun run`).

use std::io::IsTerminal;

use vmrun_compose::{with_dependencies, Project};

use super::containers::{self, Which};
use super::create::{container_body, create_container, Overrides};
use super::up::{bring_up, wait_for_dependencies, Converge};
use crate::api::Api;
use crate::commands::exec::{self, ExecArgs};
use crate::commands::run::{attach_start_wait, start_mapped};
use crate::error::{CliError, CliResult};
use crate::opts::env::parse_env;

/// Arguments of `compose exec`.
#[derive(Debug, Clone, clap::Args)]
pub struct ComposeExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Disable pseudo-TTY allocation
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Run the command as this user
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Index of the container if there are multiple instances of a service
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// The service, then the command and its arguments
    #[arg(value_name = "SERVICE COMMAND [ARGS...]", required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub service_and_command: Vec<String>,
}

/// `vmrun compose exec`.
pub async fn exec(api: &Api, project: &str, args: &ComposeExecArgs) -> CliResult<i32> {
    let Some((service, command)) = args.service_and_command.split_first() else {
        return Err(CliError::new(1, "exec needs a service and a command"));
    };
    let list =
        containers::list(api, project, Which::Running, std::slice::from_ref(service)).await?;
    let container = list
        .iter()
        .find(|c| c.number == args.index)
        .ok_or_else(|| CliError::new(1, format!("service \"{service}\" is not running")))?;
    let mut container_and_command = vec![container.id.clone()];
    container_and_command.extend(command.iter().cloned());
    let exec_args = ExecArgs {
        interactive: !args.detach,
        tty: !args.no_tty && std::io::stdin().is_terminal(),
        detach: args.detach,
        env: args.env.clone(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        container_and_command,
    };
    exec::exec(api, &exec_args).await
}

/// Arguments of `compose run`.
#[derive(Debug, Clone, clap::Args)]
pub struct ComposeRunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Disable pseudo-TTY allocation
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Add or override a label (KEY=VALUE)
    #[arg(short = 'l', long = "label")]
    pub labels: Vec<String>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Override the entrypoint of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run as this user
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Run command with the service's ports enabled and mapped to the host
    #[arg(long)]
    pub service_ports: bool,
    /// Build the image before starting the container
    #[arg(long)]
    pub build: bool,
    /// The service, then the command and its arguments
    #[arg(value_name = "SERVICE [COMMAND] [ARGS...]", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub service_and_command: Vec<String>,
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes[..4].copy_from_slice(&nanos.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `vmrun compose run`.
pub async fn run(api: &Api, project: &Project, args: &ComposeRunArgs) -> CliResult<i32> {
    let Some((name, command)) = args.service_and_command.split_first() else {
        return Err(CliError::new(1, "run needs a service"));
    };
    let service = project
        .services
        .get(name)
        .ok_or_else(|| CliError::new(1, format!("no such service: {name}")))?;
    let mut environment = Vec::new();
    for value in &args.env {
        let pair = parse_env(value, |k| std::env::var(k).ok())
            .map_err(|e| CliError::new(1, format!("invalid -e {value:?}: {e}")))?;
        let (k, v) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
        environment.push((k.to_owned(), v.to_owned()));
    }
    let labels = args
        .labels
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    // Dependencies up (and waited for), then this service's networks, volumes and image.
    let deps: Vec<String> = if args.no_deps {
        Vec::new()
    } else {
        with_dependencies(project, std::slice::from_ref(name), false)
            .into_iter()
            .filter(|d| d != name)
            .collect()
    };
    let converge = Converge {
        build: args.build,
        ..Converge::default()
    };
    bring_up(api, project, &deps, &converge).await?;
    super::resources::ensure_images(api, project, std::slice::from_ref(name), args.build).await?;
    if !args.no_deps {
        wait_for_dependencies(api, project, service).await?;
    }
    let tty = !args.no_tty && !args.detach && std::io::stdin().is_terminal();
    let interactive = !args.detach;
    let overrides = Overrides {
        oneoff: true,
        service_ports: args.service_ports,
        command: (!command.is_empty()).then(|| command.to_vec()),
        entrypoint: args.entrypoint.as_ref().map(|e| {
            vmrun_compose::normalize::split_shell_words(e).unwrap_or_else(|_| vec![e.clone()])
        }),
        environment,
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        tty: Some(tty),
        stdin_open: Some(interactive),
        auto_remove: args.rm,
        labels,
    };
    let (body, later) = container_body(project, service, 1, &overrides)?;
    let container_name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{name}-run-{}", project.name, random_suffix()));
    let id = create_container(api, &container_name, body, later).await?;
    if args.detach {
        start_mapped(api, &id).await?;
        println!("{container_name}");
        return Ok(0);
    }
    let condition = if args.rm { "removed" } else { "next-exit" };
    attach_start_wait(api, &id, interactive, tty, condition, true).await
}
