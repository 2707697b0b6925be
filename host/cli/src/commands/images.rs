//! `images`, `rmi`, `tag` and `load`.

use bollard::query_parameters::{
    ImportImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use futures::StreamExt;

use super::{fail, now_unix, print_text};
use crate::api::Api;
use crate::error::{daemon_message, CliError, CliResult};
use crate::format::images::{image_rows, images_headers, split_repo_tag, DEFAULT_IMAGES_FORMAT};
use crate::format::OutputFormat;

/// Arguments of `images`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output: `json`, `table`, `table TEMPLATE` or a Go template
    #[arg(long)]
    pub format: Option<String>,
}

/// Arguments of `rmi`.
#[derive(Debug, Clone, clap::Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The images
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Arguments of `tag`.
#[derive(Debug, Clone, clap::Args)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

/// Arguments of `load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Parses `--format` (before any API call).
pub fn prepare(args: &ImagesArgs) -> CliResult<OutputFormat> {
    OutputFormat::parse(args.format.as_deref(), DEFAULT_IMAGES_FORMAT)
        .map_err(|e| CliError::new(1, e.to_string()))
}

/// `vmrun images`.
pub async fn images(api: &Api, args: &ImagesArgs, format: &OutputFormat) -> CliResult<i32> {
    let opts = ListImagesOptionsBuilder::new().all(args.all).build();
    let list = api.docker.list_images(Some(opts)).await.map_err(fail)?;
    let now = now_unix();
    if args.quiet {
        let mut seen = Vec::new();
        for image in &list {
            let id = if args.no_trunc {
                image.id.clone()
            } else {
                crate::format::containers::short_id(&image.id)
            };
            if !seen.contains(&id) {
                println!("{id}");
                seen.push(id);
            }
        }
        return Ok(0);
    }
    let rows: Vec<_> = list
        .iter()
        .flat_map(|i| image_rows(i, now, !args.no_trunc))
        .collect();
    let text = format
        .render(&rows, &images_headers())
        .map_err(|e| CliError::new(1, e.to_string()))?;
    print_text(&text);
    Ok(0)
}

/// `vmrun rmi`.
pub async fn rmi(api: &Api, args: &RmiArgs) -> CliResult<i32> {
    let mut failed = false;
    for image in &args.images {
        let opts = RemoveImageOptionsBuilder::new().force(args.force).build();
        match api.docker.remove_image(image, Some(opts), None).await {
            Ok(items) => {
                for item in items {
                    if let Some(u) = item.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = item.deleted {
                        println!("Deleted: {d}");
                    }
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

/// `vmrun tag`.
pub async fn tag(api: &Api, args: &TagArgs) -> CliResult<i32> {
    let (repo, tag) = split_repo_tag(&args.target);
    if repo.is_empty() || repo.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(CliError::new(
            1,
            format!("invalid reference format: \"{}\"", args.target),
        ));
    }
    let tag = if tag.is_empty() {
        "latest".to_string()
    } else {
        tag
    };
    let opts = TagImageOptionsBuilder::new().repo(&repo).tag(&tag).build();
    api.docker
        .tag_image(&args.source, Some(opts))
        .await
        .map_err(fail)?;
    Ok(0)
}

/// `vmrun load`: streams a docker-archive tar to `POST /images/load`.
pub async fn load(api: &Api, args: &LoadArgs) -> CliResult<i32> {
    let body = match &args.input {
        Some(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| CliError::new(1, format!("open {path}: {e}")))?;
            bollard::body_try_stream(tokio_util::io::ReaderStream::new(file))
        }
        None => {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                return Err(CliError::new(
                    1,
                    "requested load from stdin, but stdin is empty (use -i FILE)",
                ));
            }
            bollard::body_try_stream(tokio_util::io::ReaderStream::new(tokio::io::stdin()))
        }
    };
    let opts = ImportImageOptionsBuilder::new().quiet(args.quiet).build();
    let mut stream = api.docker.import_image(opts, body, None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(fail)?;
        let in_progress = info
            .progress_detail
            .as_ref()
            .is_some_and(|p| p.current.is_some() || p.total.is_some());
        if let Some(text) = info.stream {
            print_text(&text);
        } else if let (Some(status), false) = (info.status, in_progress) {
            println!("{status}");
        }
    }
    Ok(0)
}
