//! `images`, `rmi`, `tag` and `load`.

use bollard::query_parameters::{
    ImportImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use futures::StreamExt;

use super::{fail, now_unix, print_text};
use crate::api::Api;
use crate::error::{daemon_message, go_io_error, CliError, CliResult};
use crate::format::images::{image_rows, images_headers, split_repo_tag, DEFAULT_IMAGES_FORMAT};
use crate::format::OutputFormat;
use crate::opts::filters::parse_filters;
use crate::opts::reference::check_reference;
use crate::progress::UploadProgress;

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
    /// Filter output based on conditions provided (`dangling=true`, `reference=busy*`...)
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
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
    let filters = parse_filters(&args.filter)?;
    let opts = ListImagesOptionsBuilder::new()
        .all(args.all)
        .filters(&filters)
        .build();
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
    if let Err(e) = check_reference(&args.target) {
        return Err(CliError::new(
            1,
            format!(
                "Error parsing reference: \"{}\" is not a valid repository/tag: {e}",
                args.target
            ),
        ));
    }
    let (repo, tag) = split_repo_tag(&args.target);
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

/// Bytes read from the archive per chunk sent.
const LOAD_CHUNK_SIZE: usize = 256 * 1024;

/// `vmrun load`: streams an image archive (docker-archive or OCI layout
/// tar) to `POST /images/load`, with a progress bar of the bytes sent when
/// stdout is a terminal.
pub async fn load(api: &Api, args: &LoadArgs) -> CliResult<i32> {
    use std::io::IsTerminal;
    let (reader, total): (Box<dyn tokio::io::AsyncRead + Send + Unpin>, Option<u64>) =
        match &args.input {
            Some(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| CliError::new(1, format!("open {path}: {}", go_io_error(&e))))?;
                let len = file.metadata().await.ok().map(|m| m.len());
                (Box::new(file), len)
            }
            None => {
                if std::io::stdin().is_terminal() {
                    return Err(CliError::new(
                        1,
                        "requested load from stdin, but stdin is empty",
                    ));
                }
                (Box::new(tokio::io::stdin()), None)
            }
        };
    let progress = if UploadProgress::wanted(args.quiet) {
        UploadProgress::on_stdout(total, "Uploading")
    } else {
        UploadProgress::hidden()
    };
    let body = progress.track(
        tokio_util::io::ReaderStream::with_capacity(reader, LOAD_CHUNK_SIZE),
        "Loading",
    );
    let opts = ImportImageOptionsBuilder::new().quiet(args.quiet).build();
    let mut stream = api
        .docker
        .import_image(opts, bollard::body_try_stream(body), None);
    let mut result = Ok(0);
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                result = Err(fail(e));
                break;
            }
        };
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            result = Err(CliError::new(1, error));
            break;
        }
        let in_progress = info
            .progress_detail
            .as_ref()
            .is_some_and(|p| p.current.is_some() || p.total.is_some());
        if let Some(text) = info.stream {
            progress.print(&text);
        } else if let (Some(status), false) = (info.status, in_progress) {
            progress.print(&format!("{status}\n"));
        }
    }
    progress.finish();
    result
}
