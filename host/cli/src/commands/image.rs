//! `vmrun image …`: the image command group (`ls`, `rm`, `prune`, …), docker's long forms
//! of `images`, `rmi`, `tag`, `load`, `save`, `pull` and `push`.

use std::io::{BufRead, IsTerminal, Write};

use bollard::query_parameters::PruneImagesOptionsBuilder;
use serde_json::Value;

use super::{fail, images, print_text, pull, push, save};
use crate::api::Api;
use crate::cli::Command;
use crate::error::{CliError, CliResult};
use crate::format::human::human_size;
use crate::opts::filters::parse_filters;

/// `image` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(images::ImagesArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(images::RmiArgs),
    /// Show the history of an image
    History(super::history::HistoryArgs),
    /// Display detailed information on one or more images
    Inspect(ImageInspectArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Load an image from a tar archive
    Load(images::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(super::import::ImportArgs),
    /// Save one or more images to a tar archive
    Save(save::SaveArgs),
    /// Download an image from a registry
    Pull(pull::PullArgs),
    /// Upload an image to a registry
    Push(push::PushArgs),
    /// Remove unused images
    Prune(PruneArgs),
}

impl ImageCommand {
    /// The top-level command this is the long form of; `None` for `prune`.
    pub fn as_command(self) -> Result<Command, PruneArgs> {
        Ok(match self {
            ImageCommand::Ls(a) => Command::Images(a),
            ImageCommand::Rm(a) => Command::Rmi(a),
            ImageCommand::History(a) => Command::History(a),
            ImageCommand::Inspect(a) => Command::Inspect(super::inspect::InspectArgs {
                format: a.format,
                kind: Some("image".to_owned()),
                names: a.images,
            }),
            ImageCommand::Tag(a) => Command::Tag(a),
            ImageCommand::Load(a) => Command::Load(a),
            ImageCommand::Import(a) => Command::Import(a),
            ImageCommand::Save(a) => Command::Save(a),
            ImageCommand::Pull(a) => Command::Pull(a),
            ImageCommand::Push(a) => Command::Push(a),
            ImageCommand::Prune(a) => return Err(a),
        })
    }
}

/// Arguments of `image inspect`: `inspect --type image`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImageInspectArgs {
    /// Format output: `json` or a Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// The images
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Arguments of `image prune`.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. `label=<key>=<value>`)
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

const DANGLING_WARNING: &str = "WARNING! This will remove all dangling images.";
const ALL_WARNING: &str =
    "WARNING! This will remove all images without at least one container associated to them.";

/// `vmrun image prune`: asks first unless `-f`, then prints what went and the space
/// reclaimed, as docker does.
pub async fn prune(api: &Api, args: &PruneArgs) -> CliResult<i32> {
    let mut filters = parse_filters(&args.filter)?;
    filters.insert(
        "dangling".into(),
        vec![if args.all { "false" } else { "true" }.into()],
    );
    if !args.force
        && !confirm(if args.all {
            ALL_WARNING
        } else {
            DANGLING_WARNING
        })?
    {
        return Ok(0);
    }
    let opts = PruneImagesOptionsBuilder::new().filters(&filters).build();
    let report = api.docker.prune_images(Some(opts)).await.map_err(fail)?;
    let report = serde_json::to_value(&report)
        .map_err(|e| CliError::new(1, format!("reading the prune report: {e}")))?;
    print_text(&prune_text(&report));
    Ok(0)
}

/// Docker's prune report: `Deleted Images:` with one line each, a blank line, then
/// `Total reclaimed space: …`.
pub fn prune_text(report: &Value) -> String {
    let mut out = String::new();
    if let Some(items) = report["ImagesDeleted"].as_array().filter(|a| !a.is_empty()) {
        out.push_str("Deleted Images:\n");
        for item in items {
            match item["Untagged"].as_str().filter(|u| !u.is_empty()) {
                Some(u) => out.push_str(&format!("untagged: {u}\n")),
                None => out.push_str(&format!(
                    "deleted: {}\n",
                    item["Deleted"].as_str().unwrap_or_default()
                )),
            }
        }
        out.push('\n');
    }
    let reclaimed = report["SpaceReclaimed"].as_u64().unwrap_or(0);
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed as f64)
    ));
    out
}

/// Prints `warning` and asks docker's question; anything but `y`/`yes` is no. Without a
/// terminal on stdin docker reads the answer all the same; so do we.
pub(crate) fn confirm(warning: &str) -> CliResult<bool> {
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{warning}\nAre you sure you want to continue? [y/N] ");
    let _ = out.flush();
    drop(out);
    let mut line = String::new();
    let stdin = std::io::stdin();
    if stdin.lock().read_line(&mut line).is_err() && stdin.is_terminal() {
        return Err(CliError::new(1, "reading the answer failed"));
    }
    let answer = line.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_report_like_docker() {
        let report = serde_json::json!({
            "ImagesDeleted": [{"Untagged": "a:1"}, {"Deleted": "sha256:ab"}],
            "SpaceReclaimed": 1234,
        });
        assert_eq!(
            prune_text(&report),
            "Deleted Images:\nuntagged: a:1\ndeleted: sha256:ab\n\nTotal reclaimed space: 1.234kB\n"
        );
        let empty = serde_json::json!({"ImagesDeleted": null, "SpaceReclaimed": 0});
        assert_eq!(prune_text(&empty), "Total reclaimed space: 0B\n");
    }
}
