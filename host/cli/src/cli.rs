//! The command line: global flags, the subcommand tree and dispatch.

use std::ffi::OsString;

use clap::{Parser, Subcommand};

use crate::api::DEFAULT_HOST;
use crate::commands;
use crate::error::{CliError, EXIT_CLI_ERROR};

/// vmrun: run containers in lightweight VMs with a Docker-compatible CLI.
#[derive(Debug, Parser)]
#[command(name = "vmrun", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host", env = "VMRUN_HOST", default_value = DEFAULT_HOST, global = true)]
    pub host: String,
    /// Enable debug output
    #[arg(short = 'D', long, global = true)]
    pub debug: bool,
    /// The command
    #[command(subcommand)]
    pub command: Command,
}

/// All subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(commands::run::RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(commands::run::RunArgs),
    /// List containers
    Ps(commands::ps::PsArgs),
    /// Fetch the logs of a container
    Logs(commands::logs::LogsArgs),
    /// Execute a command in a running container
    Exec(commands::exec::ExecArgs),
    /// Start one or more stopped containers
    Start(commands::lifecycle::StartArgs),
    /// Stop one or more running containers
    Stop(commands::lifecycle::StopArgs),
    /// Restart one or more containers
    Restart(commands::lifecycle::StopArgs),
    /// Kill one or more running containers
    Kill(commands::lifecycle::KillArgs),
    /// Remove one or more containers
    Rm(commands::lifecycle::RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(commands::lifecycle::WaitArgs),
    /// Return low-level information on containers or images
    Inspect(commands::inspect::InspectArgs),
    /// Display the running processes of a container
    Top(commands::top::TopArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(commands::cp::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(commands::container_ops::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(commands::container_ops::ExportArgs),
    /// Pause all processes within one or more containers
    Pause(commands::container_ops::PauseArgs),
    /// Unpause all processes within one or more containers
    Unpause(commands::container_ops::PauseArgs),
    /// Rename a container
    Rename(commands::container_ops::RenameArgs),
    /// List port mappings or a specific mapping for the container
    Port(commands::container_ops::PortArgs),
    /// Search a registry for images
    Search(commands::search::SearchArgs),
    /// Update configuration of one or more containers
    Update(commands::container_ops::UpdateArgs),
    /// Display a live stream of container resource usage statistics
    Stats(commands::stats::StatsArgs),
    /// List images
    Images(commands::images::ImagesArgs),
    /// Build an image from a Dockerfile
    Build(commands::build::BuildArgs),
    /// Create a new image from a container's changes
    Commit(commands::commit::CommitArgs),
    /// Show the history of an image
    History(commands::history::HistoryArgs),
    /// Remove one or more images
    Rmi(commands::images::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(commands::images::TagArgs),
    /// Load an image from a tar archive
    Load(commands::images::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(commands::import::ImportArgs),
    /// Download an image from a registry
    Pull(commands::pull::PullArgs),
    /// Upload an image to a registry
    Push(commands::push::PushArgs),
    /// Log in to a registry
    Login(commands::login::LoginArgs),
    /// Log out from a registry
    Logout(commands::login::LogoutArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(commands::save::SaveArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(commands::prune::ContainerCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(commands::network::NetworkCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(commands::volume::VolumeCommand),
    /// Manage images
    #[command(subcommand)]
    Image(commands::image::ImageCommand),
    /// Manage the engine: disk usage, information
    #[command(subcommand)]
    System(commands::disk_usage::SystemCommand),
    /// Define and run multi-container applications (the Compose Specification)
    Compose(commands::compose::ComposeArgs),
    /// Manage the shared Linux VM (`vmrund --mode vm`): status, start, stop
    #[command(subcommand)]
    Vm(commands::vm::VmCommand),
    /// Open the desktop dashboard (`--browser`: serve it to a web browser)
    Ui(commands::ui::UiArgs),
    /// Show the vmrun version information
    Version,
    /// Display system-wide information
    Info,
    /// Run the vmrun daemon (execs `vmrund` with the remaining arguments)
    #[command(disable_help_flag = true)]
    Daemon {
        /// Arguments for vmrund
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

impl Command {
    /// The short form of a long one (`image ls` → `images`, `system info` → `info`);
    /// other commands as they are.
    pub fn short_form(self) -> Command {
        match self {
            Command::Image(cmd) => cmd
                .as_command()
                .unwrap_or_else(|a| Command::Image(commands::image::ImageCommand::Prune(a))),
            Command::System(cmd) => cmd
                .as_command()
                .unwrap_or_else(|a| Command::System(commands::disk_usage::SystemCommand::Df(a))),
            other => other,
        }
    }

    /// Whether a missing daemon should be started for this command: every command that
    /// talks to it (`version` reports a missing daemon instead; `logout` and `daemon`
    /// need none).
    pub fn starts_daemon(&self) -> bool {
        !matches!(
            self,
            Command::Version | Command::Logout(_) | Command::Daemon { .. }
        )
    }

    /// Whether errors are printed as `vmrun: MESSAGE`: docker does so for
    /// `run` only (and for local option errors of `create`); other commands
    /// print the bare message.
    pub fn prefixes_errors(&self) -> bool {
        matches!(self, Command::Run(_))
    }
}

fn init_tracing(debug: bool) {
    let filter = if debug {
        tracing_subscriber::EnvFilter::new("vmrun_cli=debug,bollard=debug")
    } else {
        tracing_subscriber::EnvFilter::try_from_env("VMRUN_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Parses `args` (including the program name), runs the command and
/// returns the process exit status. Errors are printed on stderr.
pub fn run_cli<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CLI_ERROR } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(cli.debug);
    // docker prefixes errors with its name only for `run`.
    let prefixed = cli.command.prefixes_errors();
    if let Command::Daemon { args } = &cli.command {
        return report(crate::daemon_launch::exec_daemon(args), true);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return report(
                CliError::new(1, format!("cannot start the async runtime: {e}")),
                prefixed,
            )
        }
    };
    let result = runtime.block_on(commands::dispatch(cli));
    // Helper threads (stdin readers) may still block; do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => report(e, prefixed),
    }
}

/// Prints `err` on stderr (with a `vmrun: ` prefix when `prefixed`) and
/// returns its exit status.
fn report(err: CliError, prefixed: bool) -> i32 {
    if let Some(message) = &err.message {
        if prefixed {
            eprintln!("vmrun: {message}");
        } else {
            eprintln!("{message}");
        }
    }
    err.code
}
