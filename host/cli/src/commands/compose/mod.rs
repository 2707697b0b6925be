//! `vmrun compose`: docker compose's commands, driving the daemon through the Docker
//! API only. The project (files, interpolation, merging, validation) comes from the
//! `vmrun-compose` crate and is loaded, and so checked, before anything is created;
//! containers, networks and volumes carry docker compose's labels, so `docker-compose`
//! and `vmrun compose` see the same project.

mod containers;
mod create;
mod lifecycle;
mod logs;
mod oneoff;
mod ps;
mod resources;
mod up;

use std::path::PathBuf;

use vmrun_compose::{with_dependencies, ComposeError, LoadOptions, Project};

use crate::api;
use crate::error::{CliError, CliResult};

/// `vmrun compose [OPTIONS] COMMAND`.
#[derive(Debug, Clone, clap::Args)]
pub struct ComposeArgs {
    /// Compose configuration files
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Project name
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Alternate working directory (default: the directory of the first file)
    #[arg(long)]
    pub project_directory: Option<PathBuf>,
    /// An alternate environment file
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    /// Profiles to enable
    #[arg(long = "profile")]
    pub profiles: Vec<String>,
    /// The command
    #[command(subcommand)]
    pub command: ComposeCommand,
}

/// The compose commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ComposeCommand {
    /// Create and start containers
    Up(up::UpArgs),
    /// Stop and remove containers, networks (and volumes with -v)
    Down(lifecycle::DownArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// View output from containers
    Logs(logs::LogsArgs),
    /// Execute a command in a running container
    Exec(oneoff::ComposeExecArgs),
    /// Run a one-off command on a service
    Run(oneoff::ComposeRunArgs),
    /// Build or rebuild services
    Build(lifecycle::ServicesArgs),
    /// Pull service images
    Pull(lifecycle::ServicesArgs),
    /// Restart service containers
    Restart(lifecycle::StopArgs),
    /// Stop services
    Stop(lifecycle::StopArgs),
    /// Start services
    Start(lifecycle::ServicesArgs),
    /// Parse, resolve and render the compose file in canonical format
    Config(ConfigArgs),
}

/// Arguments of `compose config`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Only validate the configuration, don't print anything
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print the service names, one per line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Print the config hash of these services ("*" for all), one per line
    #[arg(long)]
    pub hash: Option<String>,
    /// Format: yaml or json
    #[arg(long, default_value = "yaml")]
    pub format: String,
}

impl ComposeCommand {
    /// Services named on the command line (they are enabled whatever their profiles).
    fn named_services(&self) -> Vec<String> {
        match self {
            ComposeCommand::Up(a) => a.services.clone(),
            ComposeCommand::Run(a) => a.service_and_command.first().cloned().into_iter().collect(),
            ComposeCommand::Build(a) | ComposeCommand::Pull(a) => a.services.clone(),
            _ => Vec::new(),
        }
    }

    /// Whether the command can work from labels alone when there is no compose file.
    fn works_without_file(&self) -> bool {
        !matches!(
            self,
            ComposeCommand::Up(_)
                | ComposeCommand::Run(_)
                | ComposeCommand::Build(_)
                | ComposeCommand::Pull(_)
                | ComposeCommand::Config(_)
        )
    }
}

/// Loads the project, or `None` where the command can do without a file and `-p` names
/// the project.
fn load(args: &ComposeArgs) -> CliResult<Option<Project>> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::new(1, format!("cannot read the current directory: {e}")))?;
    let opts = LoadOptions {
        files: args.files.clone(),
        project_name: args.project_name.clone(),
        project_dir: args.project_directory.clone(),
        env_file: args.env_file.clone(),
        profiles: args.profiles.clone(),
        services: args.command.named_services(),
        cwd,
        process_env: std::env::vars().collect(),
    };
    match vmrun_compose::load_project(&opts) {
        Ok(project) => Ok(Some(project)),
        Err(ComposeError::NoFile { .. })
            if args.command.works_without_file() && args.project_name.is_some() =>
        {
            Ok(None)
        }
        Err(e) => Err(CliError::new(1, e.to_string())),
    }
}

fn config(project: &Project, args: &ConfigArgs) -> CliResult<i32> {
    let text = if args.services {
        let order = vmrun_compose::start_order(project, "").unwrap_or_default();
        order.iter().map(|s| format!("{s}\n")).collect()
    } else if args.volumes {
        project.volumes.keys().map(|v| format!("{v}\n")).collect()
    } else if let Some(which) = &args.hash {
        let mut out = String::new();
        for (name, service) in &project.services {
            if which == "*" || which.split(',').any(|w| w == name) {
                out.push_str(&format!("{name} {}\n", vmrun_compose::config_hash(service)));
            }
        }
        out
    } else if args.quiet {
        String::new()
    } else if args.format == "json" {
        serde_json::to_string_pretty(project).map_err(|e| CliError::new(1, e.to_string()))? + "\n"
    } else {
        serde_norway::to_string(project).map_err(|e| CliError::new(1, e.to_string()))?
    };
    crate::commands::print_text(&text);
    Ok(0)
}

/// Runs `vmrun compose ...`: the project is loaded (and checked) before the daemon is
/// reached.
pub async fn compose(host: &str, autostart: bool, args: ComposeArgs) -> CliResult<i32> {
    let project = load(&args)?;
    let name = match (&project, &args.project_name) {
        (Some(p), _) => p.name.clone(),
        (None, Some(n)) => vmrun_compose::project::normalize_project_name(n),
        (None, None) => return Err(CliError::new(1, "no compose file and no project name")),
    };
    if let (ComposeCommand::Config(c), Some(p)) = (&args.command, &project) {
        return config(p, c);
    }
    let api = api::connect(host, autostart).await?;
    let needs_project = || {
        project
            .as_ref()
            .ok_or_else(|| CliError::new(1, "this command needs a compose file"))
    };
    match &args.command {
        ComposeCommand::Up(a) => up::up(&api, needs_project()?, a).await,
        ComposeCommand::Down(a) => lifecycle::down(&api, &name, project.as_ref(), a).await,
        ComposeCommand::Ps(a) => ps::ps(&api, &name, a).await,
        ComposeCommand::Logs(a) => logs::logs(&api, &name, a).await,
        ComposeCommand::Exec(a) => oneoff::exec(&api, &name, a).await,
        ComposeCommand::Run(a) => oneoff::run(&api, needs_project()?, a).await,
        ComposeCommand::Build(a) => {
            let p = needs_project()?;
            for s in with_dependencies(p, &a.services, true) {
                if let Some(service) = p.services.get(&s) {
                    resources::build_service(&api, service).await?;
                }
            }
            Ok(0)
        }
        ComposeCommand::Pull(a) => {
            let p = needs_project()?;
            for s in with_dependencies(p, &a.services, true) {
                match p.services.get(&s) {
                    Some(service) if service.build.is_none() => {
                        resources::pull_service(&api, service).await?
                    }
                    _ => {}
                }
            }
            Ok(0)
        }
        ComposeCommand::Restart(a) => lifecycle::restart(&api, &name, project.as_ref(), a).await,
        ComposeCommand::Stop(a) => lifecycle::stop(&api, &name, project.as_ref(), a).await,
        ComposeCommand::Start(a) => lifecycle::start(&api, &name, project.as_ref(), a).await,
        ComposeCommand::Config(_) => Err(CliError::new(1, "config needs a compose file")),
    }
}
