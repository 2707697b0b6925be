//! `start`, `stop`, `restart`, `kill`, `rm` and `wait`.

use bollard::query_parameters::{
    KillContainerOptionsBuilder, RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder,
    StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::StreamExt;

use super::run::{attach_start_wait, start_mapped};
use super::{fail, for_each_name};
use crate::api::Api;
use crate::error::{daemon_message, status_code, CliError, CliResult};

/// Arguments of `start`.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// The containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Arguments of `stop` and `restart`.
#[derive(Debug, Clone, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        allow_hyphen_values = true
    )]
    pub time: Option<i32>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// The containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Arguments of `kill`.
#[derive(Debug, Clone, clap::Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    /// The containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Arguments of `rm`.
#[derive(Debug, Clone, clap::Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// The containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Arguments of `wait`.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// The containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `vmrun start`.
pub async fn start(api: &Api, args: &StartArgs) -> CliResult<i32> {
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            return Err(CliError::new(
                1,
                "you cannot start and attach multiple containers at once",
            ));
        }
        let name = &args.containers[0];
        let inspected = api
            .docker
            .inspect_container(name, None)
            .await
            .map_err(fail)?;
        let id = inspected.id.unwrap_or_else(|| name.clone());
        let config = inspected.config.unwrap_or_default();
        let tty = config.tty.unwrap_or(false);
        let interactive = args.interactive && config.open_stdin.unwrap_or(false);
        let auto_remove = inspected
            .host_config
            .and_then(|h| h.auto_remove)
            .unwrap_or(false);
        let condition = if auto_remove { "removed" } else { "next-exit" };
        return attach_start_wait(api, &id, interactive, tty, condition, true).await;
    }
    let mut failed = Vec::new();
    for name in &args.containers {
        match start_mapped(api, name).await {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("{}", e.message.unwrap_or_default());
                failed.push(name.as_str());
            }
        }
    }
    if failed.is_empty() {
        return Ok(0);
    }
    Err(CliError::new(
        1,
        format!("Error: failed to start containers: {}", failed.join(", ")),
    ))
}

/// `vmrun stop` (or `restart` with `restart` set).
pub async fn stop(api: &Api, args: &StopArgs, restart: bool) -> CliResult<i32> {
    for_each_name(&args.containers, true, |name| async move {
        if restart {
            let mut opts = RestartContainerOptionsBuilder::new();
            if let Some(t) = args.time {
                opts = opts.t(t);
            }
            if let Some(s) = &args.signal {
                opts = opts.signal(s);
            }
            api.docker
                .restart_container(&name, Some(opts.build()))
                .await
        } else {
            let mut opts = StopContainerOptionsBuilder::new();
            if let Some(t) = args.time {
                opts = opts.t(t);
            }
            if let Some(s) = &args.signal {
                opts = opts.signal(s);
            }
            api.docker.stop_container(&name, Some(opts.build())).await
        }
    })
    .await
}

/// `vmrun kill`.
pub async fn kill(api: &Api, args: &KillArgs) -> CliResult<i32> {
    for_each_name(&args.containers, true, |name| async move {
        let opts = KillContainerOptionsBuilder::new()
            .signal(&args.signal)
            .build();
        api.docker.kill_container(&name, Some(opts)).await
    })
    .await
}

/// `vmrun rm`. With `-f`, a container that does not exist is reported but
/// does not fail the command, as in docker.
pub async fn rm(api: &Api, args: &RmArgs) -> CliResult<i32> {
    let mut failed = false;
    for name in &args.containers {
        let opts = RemoveContainerOptionsBuilder::new()
            .force(args.force)
            .v(args.volumes)
            .build();
        match api.docker.remove_container(name, Some(opts)).await {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("{}", daemon_message(&e));
                failed |= !(args.force && status_code(&e) == Some(404));
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// `vmrun wait`: prints each container's exit status.
pub async fn wait(api: &Api, args: &WaitArgs) -> CliResult<i32> {
    let mut failed = false;
    for name in &args.containers {
        let opts = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut stream = api.docker.wait_container(name, Some(opts));
        match stream.next().await {
            Some(Ok(resp)) => println!("{}", resp.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                println!("{code}")
            }
            Some(Err(e)) => {
                eprintln!("{}", daemon_message(&e));
                failed = true;
            }
            None => {
                eprintln!("Error: no response waiting for {name}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
