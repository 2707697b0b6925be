//! `vmrun ps`.

use bollard::query_parameters::ListContainersOptionsBuilder;

use super::{fail, now_unix, print_text};
use crate::api::Api;
use crate::error::{CliError, CliResult};
use crate::format::containers::{ps_headers, ps_row, DEFAULT_PS_FORMAT};
use crate::format::OutputFormat;
use crate::opts::filters::parse_filters;

/// Arguments of `ps`.
#[derive(Debug, Clone, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output: `json`, `table`, `table TEMPLATE` or a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Filter output based on conditions provided (`name=web`, `status=exited`...)
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", allow_hyphen_values = true)]
    pub last: Option<i32>,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
}

/// Parses `--format` (before any API call).
pub fn prepare(args: &PsArgs) -> CliResult<OutputFormat> {
    let format = if args.quiet {
        Some("{{.ID}}")
    } else {
        args.format.as_deref()
    };
    OutputFormat::parse(format, DEFAULT_PS_FORMAT).map_err(|e| CliError::new(1, e.to_string()))
}

/// `vmrun ps`.
pub async fn ps(api: &Api, args: &PsArgs, format: &OutputFormat) -> CliResult<i32> {
    let filters = parse_filters(&args.filter)?;
    let limit = if args.latest {
        Some(1)
    } else {
        args.last.filter(|n| *n > 0)
    };
    let mut opts = ListContainersOptionsBuilder::new()
        .all(args.all || limit.is_some())
        .filters(&filters);
    if let Some(n) = limit {
        opts = opts.limit(n);
    }
    let opts = opts.build();
    let containers = api.docker.list_containers(Some(opts)).await.map_err(fail)?;
    let now = now_unix();
    let rows: Vec<_> = containers
        .iter()
        .map(|c| ps_row(c, now, !args.no_trunc))
        .collect();
    let text = format
        .render(&rows, &ps_headers())
        .map_err(|e| CliError::new(1, e.to_string()))?;
    print_text(&text);
    Ok(0)
}
