//! One module per command group; [`dispatch`] routes a parsed command line.

pub mod build;
pub mod commit;
pub mod compose;
pub mod container_ops;
pub mod cp;
pub mod disk_usage;
mod disk_usage_verbose;
pub mod exec;
pub mod history;
pub mod image;
pub mod images;
pub mod import;
pub mod inspect;
pub mod lifecycle;
pub mod login;
pub mod logs;
pub mod network;
pub mod prune;
pub mod ps;
pub mod pull;
pub mod push;
pub mod run;
pub mod save;
pub mod search;
pub mod stats;
pub mod system;
pub mod top;
pub mod ui;
pub mod vm;
pub mod volume;

use crate::api;
use crate::cli::{Cli, Command};
use crate::error::{daemon_message, CliError, CliResult};

/// Runs a parsed command line and returns the exit status.
pub async fn dispatch(cli: Cli) -> CliResult<i32> {
    let command = cli.command.short_form();
    let autostart = command.starts_daemon();
    let host = cli.host;
    let debug = cli.debug;
    let connect = || api::connect(&host, autostart);
    match command {
        Command::Run(args) => {
            // Parse everything locally before any API call, like docker.
            let request = run::prepare(&args)?;
            run::run(&connect().await?, &args, request).await
        }
        Command::Create(args) => {
            let request = run::prepare(&args).map_err(CliError::prefixed)?;
            // docker exits 1 (not run's 125) when the daemon refuses a create.
            run::create(&connect().await?, request)
                .await
                .map_err(|e| CliError { code: 1, ..e })
        }
        Command::Ps(args) => {
            let format = ps::prepare(&args)?;
            ps::ps(&connect().await?, &args, &format).await
        }
        Command::Logs(args) => logs::logs(&connect().await?, &args).await,
        Command::Exec(args) => exec::exec(&connect().await?, &args).await,
        Command::Start(args) => lifecycle::start(&connect().await?, &args).await,
        Command::Stop(args) => lifecycle::stop(&connect().await?, &args, false).await,
        Command::Restart(args) => lifecycle::stop(&connect().await?, &args, true).await,
        Command::Kill(args) => lifecycle::kill(&connect().await?, &args).await,
        Command::Rm(args) => lifecycle::rm(&connect().await?, &args).await,
        Command::Wait(args) => lifecycle::wait(&connect().await?, &args).await,
        Command::Inspect(args) => {
            let format = inspect::prepare(args.format.as_deref())?;
            inspect::inspect(&connect().await?, &args, &format).await
        }
        Command::Top(args) => top::top(&connect().await?, &args).await,
        Command::Cp(args) => cp::cp(&connect().await?, &args).await,
        Command::Diff(args) => container_ops::diff(&connect().await?, &args).await,
        Command::Export(args) => container_ops::export(&connect().await?, &args).await,
        Command::Pause(args) => container_ops::pause(&connect().await?, &args).await,
        Command::Unpause(args) => container_ops::unpause(&connect().await?, &args).await,
        Command::Rename(args) => container_ops::rename(&connect().await?, &args).await,
        Command::Port(args) => container_ops::port(&connect().await?, &args).await,
        Command::Update(args) => container_ops::update(&connect().await?, &args).await,
        Command::Search(args) => {
            let format = search::prepare(&args)?;
            search::search(&connect().await?, &args, &format).await
        }
        Command::Stats(args) => {
            let format = stats::prepare(&args)?;
            stats::stats(&connect().await?, &args, &format).await
        }
        Command::Images(args) => {
            let format = images::prepare(&args)?;
            images::images(&connect().await?, &args, &format).await
        }
        Command::Commit(args) => commit::commit(&connect().await?, &args).await,
        Command::Build(args) => build::build(&connect().await?, &args).await,
        Command::History(args) => {
            let format = history::prepare(&args)?;
            history::history(&connect().await?, &args, &format).await
        }
        Command::Rmi(args) => images::rmi(&connect().await?, &args).await,
        Command::Tag(args) => images::tag(&connect().await?, &args).await,
        Command::Load(args) => images::load(&connect().await?, &args).await,
        Command::Import(args) => import::import(&connect().await?, &args).await,
        Command::Pull(args) => pull::pull(&connect().await?, &args).await,
        Command::Push(args) => push::push(&connect().await?, &args).await,
        Command::Login(args) => login::login(&connect().await?, &args).await,
        Command::Logout(args) => login::logout(&args),
        Command::Save(args) => {
            save::prepare(&args)?;
            save::save(&connect().await?, &args).await
        }
        Command::Container(prune::ContainerCommand::Prune(flags)) => {
            prune::prune(&connect().await?, prune::Kind::Containers, &flags).await
        }
        Command::Network(network::NetworkCommand::Prune(flags)) => {
            prune::prune(&connect().await?, prune::Kind::Networks, &flags).await
        }
        Command::Volume(volume::VolumeCommand::Prune { all, flags }) => {
            prune::prune(&connect().await?, prune::Kind::Volumes(all), &flags).await
        }
        Command::Network(cmd) => network::network(&connect().await?, cmd).await,
        Command::Volume(cmd) => volume::volume(&connect().await?, cmd).await,
        Command::Compose(args) => compose::compose(&host, autostart, args).await,
        Command::Vm(cmd) => vm::vm(&connect().await?, cmd).await,
        Command::Ui(args) => ui::ui(&host, &args).await,
        Command::Version => system::version(&host).await,
        Command::Info => system::info(&connect().await?, debug).await,
        Command::Image(image::ImageCommand::Prune(args)) => {
            image::prune(&connect().await?, &args).await
        }
        Command::Image(_) => Err(CliError::new(1, "image command not dispatched")),
        Command::System(disk_usage::SystemCommand::Df(args)) => {
            let format = disk_usage::prepare(&args)?;
            disk_usage::df(&connect().await?, &args, &format).await
        }
        Command::System(_) => Err(CliError::new(1, "system command not dispatched")),
        Command::Daemon { .. } => Err(CliError::new(1, "`daemon` is handled before dispatch")),
    }
}

/// Runs `op` for each name, printing the name on success and the daemon's
/// error on failure (like `docker stop a b`); exit 1 if any failed.
pub async fn for_each_name<F, Fut>(names: &[String], print_name: bool, mut op: F) -> CliResult<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), bollard::errors::Error>>,
{
    let mut failed = false;
    for name in names {
        match op(name.clone()).await {
            Ok(()) => {
                if print_name {
                    println!("{name}");
                }
            }
            Err(e) => {
                eprintln!("{}", daemon_message(&e));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// The current Unix time in seconds.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Prints text that already ends in a newline (or nothing).
pub fn print_text(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Maps an API error of a plain command to exit status 1.
pub fn fail(err: bollard::errors::Error) -> CliError {
    CliError::daemon(1, &err)
}
