//! `vmrun logs`.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use std::io::Write;

use super::fail;
use crate::api::Api;
use crate::error::CliResult;

/// Arguments of `logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs (or "all")
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// The container
    pub container: String,
}

/// `vmrun logs`.
pub async fn logs(api: &Api, args: &LogsArgs) -> CliResult<i32> {
    let opts = LogsOptionsBuilder::new()
        .follow(args.follow)
        .stdout(true)
        .stderr(true)
        .timestamps(args.timestamps)
        .tail(&args.tail)
        .build();
    let mut stream = api.docker.logs(&args.container, Some(opts));
    while let Some(frame) = stream.next().await {
        let written = match frame.map_err(fail)? {
            LogOutput::StdErr { message } => {
                let mut err = std::io::stderr().lock();
                err.write_all(&message).and_then(|()| err.flush())
            }
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                let mut out = std::io::stdout().lock();
                out.write_all(&message).and_then(|()| out.flush())
            }
            LogOutput::StdIn { .. } => Ok(()),
        };
        if written.is_err() {
            break;
        }
    }
    Ok(0)
}
