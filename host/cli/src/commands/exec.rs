//! `vmrun exec`.

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};

use crate::api::Api;
use crate::attach::{self, RawTerminal, ResizeTarget};
use crate::error::{daemon_message, start_error_code, CliError, CliResult, EXIT_CLI_ERROR};
use crate::opts::env::parse_env;

/// Arguments of `exec`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// The container, then the command and its arguments
    #[arg(value_name = "CONTAINER COMMAND [ARG...]", required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub container_and_command: Vec<String>,
}

/// `vmrun exec`.
pub async fn exec(api: &Api, args: &ExecArgs) -> CliResult<i32> {
    let (container, command) = match args.container_and_command.split_first() {
        Some((c, cmd)) if !cmd.is_empty() => (c.clone(), cmd.to_vec()),
        _ => return Err(CliError::usage("\"exec\" requires at least 2 arguments")),
    };
    let mut env = Vec::new();
    for value in &args.env {
        env.push(parse_env(value, |k| std::env::var(k).ok()).map_err(|e| {
            CliError::usage(format!(
                "invalid argument \"{value}\" for \"-e, --env\" flag: {e}"
            ))
        })?);
    }
    let attach = !args.detach;
    let config = CreateExecOptions::<String> {
        attach_stdin: Some(args.interactive && attach),
        attach_stdout: Some(attach),
        attach_stderr: Some(attach),
        tty: Some(args.tty),
        env: (!env.is_empty()).then_some(env),
        cmd: Some(command),
        user: args.user.clone(),
        working_dir: args.workdir.clone(),
        ..Default::default()
    };
    let created = api
        .docker
        .create_exec(&container, config)
        .await
        .map_err(|e| CliError::daemon(1, &e))?;
    let start_opts = StartExecOptions {
        detach: args.detach,
        tty: args.tty,
        output_capacity: None,
    };
    let map_start = |e: bollard::errors::Error| {
        let message = daemon_message(&e);
        let code = match start_error_code(&message) {
            EXIT_CLI_ERROR => 1,
            other => other,
        };
        CliError::new(code, message)
    };
    let raw_mode = if args.tty && args.interactive && attach {
        RawTerminal::stdin()
    } else {
        None
    };
    let started = api
        .docker
        .start_exec(&created.id, Some(start_opts))
        .await
        .map_err(map_start)?;
    let StartExecResults::Attached { output, input } = started else {
        return Ok(0);
    };
    let _resize = args
        .tty
        .then(|| attach::spawn_resize_monitor(api.clone(), ResizeTarget::Exec(created.id.clone())));
    let streamed = attach::stream_stdio(output, input, args.interactive).await;
    drop(raw_mode);
    if let Err(e) = streamed {
        tracing::debug!("exec stream ended with an error: {e}");
    }
    let inspected = api
        .docker
        .inspect_exec(&created.id)
        .await
        .map_err(|e| CliError::daemon(1, &e))?;
    Ok(inspected
        .exit_code
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(EXIT_CLI_ERROR))
}
