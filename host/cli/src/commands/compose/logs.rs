//! `vmrun compose logs`: the logs of a project's containers, each line prefixed with
//! the container's name (`p-web-1  | ...`), one container after the other, or all at
//! once while they run with `-f` (and after `up` without `-d`).

use std::io::Write;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use vmrun_compose::Project;

use super::containers::{self, ProjectContainer, Which};
use crate::api::Api;
use crate::error::CliResult;

/// Arguments of `compose logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs for each container
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Produce monochrome output (the output has no colours anyway)
    #[arg(long)]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// Writes the complete lines of `pending` with `prefix`, keeping an unfinished last line.
fn write_lines(prefix: &str, pending: &mut Vec<u8>, flush_all: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        out.write_all(prefix.as_bytes())?;
        out.write_all(&line)?;
    }
    if flush_all && !pending.is_empty() {
        out.write_all(prefix.as_bytes())?;
        out.write_all(pending)?;
        out.write_all(b"\n")?;
        pending.clear();
    }
    out.flush()
}

/// Streams one container's logs to stdout with its prefix.
async fn stream_one(api: &Api, container: &ProjectContainer, args: &LogsArgs, width: usize) {
    let prefix = if args.no_log_prefix {
        String::new()
    } else {
        format!("{:<width$} | ", container.name)
    };
    let opts = LogsOptionsBuilder::new()
        .follow(args.follow)
        .stdout(true)
        .stderr(true)
        .timestamps(args.timestamps)
        .tail(&args.tail)
        .build();
    let mut stream = api.docker.logs(&container.id, Some(opts));
    let mut pending = Vec::new();
    while let Some(frame) = stream.next().await {
        let message = match frame {
            Ok(LogOutput::StdOut { message })
            | Ok(LogOutput::StdErr { message })
            | Ok(LogOutput::Console { message }) => message,
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(e) => {
                tracing::debug!("logs of {}: {e}", container.name);
                break;
            }
        };
        pending.extend_from_slice(&message);
        if write_lines(&prefix, &mut pending, false).is_err() {
            return;
        }
    }
    let _ = write_lines(&prefix, &mut pending, true);
}

async fn show(api: &Api, list: &[ProjectContainer], args: &LogsArgs) {
    let width = list.iter().map(|c| c.name.len()).max().unwrap_or(0);
    if args.follow {
        let tasks = list.iter().map(|c| stream_one(api, c, args, width));
        futures::future::join_all(tasks).await;
    } else {
        for c in list {
            stream_one(api, c, args, width).await;
        }
    }
}

/// `vmrun compose logs`.
pub async fn logs(api: &Api, project: &str, args: &LogsArgs) -> CliResult<i32> {
    let list = containers::list(api, project, Which::Everything, &args.services).await?;
    show(api, &list, args).await;
    Ok(0)
}

/// After `up` without `-d`: follows the logs of the services' containers until they
/// have all stopped; Ctrl-C stops them.
pub async fn follow_until_stopped(
    api: &Api,
    project: &Project,
    names: &[String],
) -> CliResult<i32> {
    let list = containers::list(api, &project.name, Which::Services, names).await?;
    let args = LogsArgs {
        follow: true,
        timestamps: false,
        tail: "all".into(),
        no_color: true,
        no_log_prefix: false,
        services: names.to_vec(),
    };
    tokio::select! {
        _ = show(api, &list, &args) => Ok(0),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            for c in list.iter().rev() {
                containers::stop(api, c, None).await?;
            }
            Ok(130)
        }
    }
}
