//! `vmrun top`.

use bollard::query_parameters::TopOptionsBuilder;

use super::{fail, print_text};
use crate::api::Api;
use crate::error::CliResult;
use crate::format::table::tabwriter;

/// Arguments of `top`.
#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// The container
    pub container: String,
    /// ps options (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// Renders `top` like docker (tabwriter, min width 20, padding 3).
pub fn render_top(titles: &[String], processes: &[Vec<String>]) -> String {
    let mut text = titles.join("\t");
    text.push('\n');
    for p in processes {
        text.push_str(&p.join("\t"));
        text.push('\n');
    }
    tabwriter(&text, 20, 3)
}

/// `vmrun top`.
pub async fn top(api: &Api, args: &TopArgs) -> CliResult<i32> {
    let mut opts = TopOptionsBuilder::new();
    let ps_args = args.ps_args.join(" ");
    if !ps_args.is_empty() {
        opts = opts.ps_args(&ps_args);
    }
    let resp = api
        .docker
        .top_processes(&args.container, Some(opts.build()))
        .await
        .map_err(fail)?;
    print_text(&render_top(
        &resp.titles.unwrap_or_default(),
        &resp.processes.unwrap_or_default(),
    ));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_table() {
        let titles = ["UID", "PID", "CMD"].map(String::from);
        let procs = vec![["root", "4242", "sleep 100"].map(String::from).to_vec()];
        assert_eq!(
            render_top(&titles, &procs),
            "UID                 PID                 CMD\nroot                4242                sleep 100\n"
        );
    }
}
