//! `vmrun pull`: `POST /images/create`, with the progress stream rendered
//! like docker's: on a terminal one line per layer, updated in place (a bar
//! with bytes and speed while downloading); elsewhere plain `id: status`
//! lines. `run` uses the same renderer when it pulls a missing image.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use bollard::models::CreateImageInfo;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::api::Api;
use crate::error::{daemon_message, status_code, CliError, CliResult};
use crate::format::images::split_repo_tag;

/// A layer's line while bytes arrive.
const BAR_TEMPLATE: &str =
    "{prefix}: {msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}";
/// A line without a byte count.
const STATUS_TEMPLATE: &str = "{prefix}: {msg}";
/// A line about the whole image (no layer id).
const PLAIN_TEMPLATE: &str = "{msg}";

/// Arguments of `pull`.
#[derive(Debug, Clone, clap::Args)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable (os/arch)
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Skip image verification (accepted for compatibility)
    #[arg(long = "disable-content-trust", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub disable_content_trust: bool,
    /// The image: NAME[:TAG|@DIGEST]
    pub image: String,
}

/// Where the progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `vmrun pull`.
    Stdout,
    /// `vmrun run`: stdout belongs to the container.
    Stderr,
    /// `pull -q`: nothing.
    Quiet,
}

/// The registry host of an image reference (`docker.io` when it names none).
pub fn image_registry(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_owned()
        }
        _ => "docker.io".to_owned(),
    }
}

/// The fully qualified reference docker prints after a pull
/// (`busybox` → `docker.io/library/busybox:latest`).
pub fn full_reference(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let (repo, tag) = split_repo_tag(name);
    let registry = image_registry(&repo);
    let path = repo
        .strip_prefix(&format!("{registry}/"))
        .unwrap_or(&repo)
        .to_owned();
    let path = if registry == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    match digest {
        Some(d) => format!("{registry}/{path}@{d}"),
        None if tag.is_empty() => format!("{registry}/{path}:latest"),
        None => format!("{registry}/{path}:{tag}"),
    }
}

/// `vmrun pull [--platform P] [-q] [-a] IMAGE`.
pub async fn pull(api: &Api, args: &PullArgs) -> CliResult<i32> {
    let output = if args.quiet {
        Output::Quiet
    } else {
        Output::Stdout
    };
    if args.all_tags {
        if args.image.contains('@') || !split_repo_tag(&args.image).1.is_empty() {
            return Err(CliError::new(1, "tag can't be used with --all-tags/-a"));
        }
        pull_all_tags(api, &args.image, args.platform.as_deref(), output)
            .await
            .map_err(|message| CliError::new(1, message))?;
        let full = full_reference(&args.image);
        println!("{}", full.strip_suffix(":latest").unwrap_or(&full));
        return Ok(0);
    }
    pull_image(api, &args.image, args.platform.as_deref(), output)
        .await
        .map_err(|message| CliError::new(1, message))?;
    println!("{}", full_reference(&args.image));
    Ok(0)
}

/// Pulls `image` through the daemon, rendering its progress on `output`.
/// The error is the message to print (the daemon's, or the stream's `errorDetail`).
pub async fn pull_image(
    api: &Api,
    image: &str,
    platform: Option<&str>,
    output: Output,
) -> Result<(), String> {
    let (repo, tag) = match image.split_once('@') {
        Some((name, _)) => (split_repo_tag(name).0, String::new()),
        None => split_repo_tag(image),
    };
    let mut opts = CreateImageOptionsBuilder::new();
    if image.contains('@') {
        opts = opts.from_image(image);
    } else {
        opts = opts
            .from_image(&repo)
            .tag(if tag.is_empty() { "latest" } else { &tag });
    }
    stream_pull(api, opts, &repo, platform, output).await
}

/// Pulls every tag of the repository `repo` (no tag parameter: the daemon
/// pulls them all, one after another), rendering progress on `output`.
pub async fn pull_all_tags(
    api: &Api,
    repo: &str,
    platform: Option<&str>,
    output: Output,
) -> Result<(), String> {
    let opts = CreateImageOptionsBuilder::new().from_image(repo);
    stream_pull(api, opts, repo, platform, output).await
}

/// Sends `POST /images/create` as `opts` say and renders its progress stream.
async fn stream_pull(
    api: &Api,
    mut opts: CreateImageOptionsBuilder,
    repo: &str,
    platform: Option<&str>,
    output: Output,
) -> Result<(), String> {
    if let Some(p) = platform {
        opts = opts.platform(p);
    }
    let credentials = super::login::stored_credentials(&image_registry(repo));
    let mut stream = api
        .docker
        .create_image(Some(opts.build()), None, credentials);
    let mut renderer = Renderer::new(output);
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = &info.error_detail {
                    renderer.finish();
                    return Err(detail
                        .message
                        .clone()
                        .unwrap_or_else(|| "pull failed".into()));
                }
                renderer.show(&info);
            }
            Err(e) => {
                renderer.finish();
                let mut message = daemon_message(&e);
                if matches!(status_code(&e), Some(404 | 405 | 501))
                    && message.contains("page not found")
                {
                    message =
                        format!("pulling images is not supported by this daemon yet ({message})");
                }
                return Err(message);
            }
        }
    }
    renderer.finish();
    Ok(())
}

/// Turns progress messages into lines (shared with `vmrun push`).
pub(crate) struct Renderer {
    output: Output,
    /// On a terminal: the live lines.
    multi: Option<MultiProgress>,
    layers: HashMap<String, ProgressBar>,
    lines: Vec<ProgressBar>,
}

impl Renderer {
    pub(crate) fn new(output: Output) -> Self {
        let multi = match output {
            Output::Stdout if std::io::stdout().is_terminal() => {
                Some(MultiProgress::with_draw_target(ProgressDrawTarget::stdout()))
            }
            Output::Stderr if std::io::stderr().is_terminal() => {
                Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            }
            _ => None,
        };
        Renderer {
            output,
            multi,
            layers: HashMap::new(),
            lines: Vec::new(),
        }
    }

    fn show(&mut self, info: &CreateImageInfo) {
        let Some(status) = info.status.as_deref() else {
            return;
        };
        let id = info.id.as_deref().filter(|i| !i.is_empty());
        let bytes = info
            .progress_detail
            .as_ref()
            .and_then(|p| Some((p.current?, p.total?)))
            .filter(|(_, total)| *total > 0);
        self.show_event(id, status, bytes);
    }

    /// Shows one message: `status` of layer `id` (or of the whole image), with
    /// `(current, total)` bytes while they move.
    pub(crate) fn show_event(&mut self, id: Option<&str>, status: &str, bytes: Option<(i64, i64)>) {
        match &self.multi {
            Some(multi) => {
                let multi = multi.clone();
                self.show_live(&multi, id, status, bytes);
            }
            None => self.show_plain(id, status, bytes.is_some()),
        }
    }

    /// Not a terminal: docker prints each message except byte counts.
    fn show_plain(&self, id: Option<&str>, status: &str, in_progress: bool) {
        if in_progress {
            return;
        }
        let line = match id {
            Some(id) => format!("{id}: {status}\n"),
            None => format!("{status}\n"),
        };
        let _ = match self.output {
            Output::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
            Output::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
            Output::Quiet => Ok(()),
        };
    }

    fn show_live(
        &mut self,
        multi: &MultiProgress,
        id: Option<&str>,
        status: &str,
        bytes: Option<(i64, i64)>,
    ) {
        let Some(id) = id else {
            let line = multi.add(ProgressBar::new(0));
            line.set_style(style(PLAIN_TEMPLATE));
            line.finish_with_message(status.to_owned());
            self.lines.push(line);
            return;
        };
        let bar = self
            .layers
            .entry(id.to_owned())
            .or_insert_with(|| {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(style(STATUS_TEMPLATE));
                bar.set_prefix(id.to_owned());
                bar.enable_steady_tick(Duration::from_millis(250));
                bar
            })
            .clone();
        bar.set_message(status.to_owned());
        match bytes {
            Some((current, total)) => {
                if bar.length() != Some(total.unsigned_abs()) {
                    bar.set_style(style(BAR_TEMPLATE));
                    bar.reset();
                    bar.set_length(total.unsigned_abs());
                }
                bar.set_position(current.unsigned_abs());
            }
            None => {
                bar.set_style(style(STATUS_TEMPLATE));
                bar.set_length(0);
            }
        }
    }

    /// Leaves every line drawn in its final state.
    pub(crate) fn finish(&mut self) {
        for bar in self.layers.values() {
            bar.disable_steady_tick();
            bar.abandon();
        }
        self.layers.clear();
        self.lines.clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_printed_fully_qualified() {
        assert_eq!(
            full_reference("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full_reference("user/app:1"), "docker.io/user/app:1");
        assert_eq!(
            full_reference("127.0.0.1:5000/test/busybox:1"),
            "127.0.0.1:5000/test/busybox:1"
        );
        assert_eq!(
            full_reference("docker.io/library/alpine"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(
            full_reference("busybox@sha256:abcd"),
            "docker.io/library/busybox@sha256:abcd"
        );
        assert_eq!(image_registry("localhost/x"), "localhost");
        assert_eq!(image_registry("ghcr.io/a/b:1"), "ghcr.io");
        assert_eq!(image_registry("a/b"), "docker.io");
    }
}
