//! `vmrun build [OPTIONS] PATH|-`: packs the context directory (`.dockerignore`
//! applied), sends it to `POST /build` and prints the daemon's progress text as
//! `docker build` does (`Step 1/3 : ...`, `Successfully built ...`); `-q` prints only
//! the image id, `--iidfile` writes it. A failed step's exit code is the command's.
//! `-` reads the context from standard input: a tar (plain or gzip) as is, anything
//! else as the Dockerfile of an empty context, as docker does. On a terminal a status
//! line under the text shows the running step and its time.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use http_body_util::BodyExt;

use super::fail;
use crate::api::{raw, Api};
use crate::error::{CliError, CliResult};
use crate::format::human::human_size;

/// The name a Dockerfile from outside the context gets inside it.
const OUTSIDE_DOCKERFILE: &str = ".dockerfile.vmrun-outside";

/// Arguments of `build`.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (Default is 'PATH/Dockerfile')
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Container isolation technology for RUN (default, process, vm, shared-vm)
    #[arg(long)]
    pub isolation: Option<String>,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub rm: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    pub force_rm: bool,
    /// Build context directory, or `-` for a tar or a Dockerfile on standard input
    #[arg(value_name = "PATH|-")]
    pub context: PathBuf,
}

/// The status line shown on a terminal: the running step and how long it has run.
struct StepStatus {
    bar: Option<indicatif::ProgressBar>,
}

impl StepStatus {
    fn new(quiet: bool) -> StepStatus {
        use std::io::IsTerminal;
        let bar = (!quiet && std::io::stdout().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        StepStatus { bar }
    }

    /// Prints daemon text above the status line; a `Step` line becomes its message.
    fn print(&self, text: &str) {
        use std::io::Write;
        match &self.bar {
            Some(bar) => {
                if let Some(step) = text.lines().find(|l| l.starts_with("Step ")) {
                    bar.reset_elapsed();
                    bar.set_message(step.to_owned());
                }
                bar.suspend(|| {
                    print!("{text}");
                    let _ = std::io::stdout().flush();
                });
            }
            None => {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The context from standard input: a tar as is, else a Dockerfile in a new tar.
fn stdin_context() -> CliResult<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    std::io::stdin()
        .read_to_end(&mut data)
        .map_err(|e| CliError::new(1, format!("reading the context from standard input: {e}")))?;
    let is_tar = data.get(257..262) == Some(b"ustar".as_slice());
    let is_gzip = data.starts_with(&[0x1f, 0x8b]);
    if is_tar || is_gzip {
        return Ok(data);
    }
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "Dockerfile", data.as_slice())
        .and_then(|()| builder.into_inner())
        .map_err(|e| {
            CliError::new(
                1,
                format!("packing the Dockerfile from standard input: {e}"),
            )
        })
}

/// `KEY=VALUE` pairs (a bare `KEY` takes its value from the environment, as docker's
/// `--build-arg` does; null when unset there) as a JSON object.
fn pairs_json(items: &[String], from_env: bool) -> String {
    let map: serde_json::Map<String, serde_json::Value> = items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.into()),
            None if from_env => (
                item.clone(),
                std::env::var(item)
                    .map(Into::into)
                    .unwrap_or(serde_json::Value::Null),
            ),
            None => (item.clone(), "".into()),
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// The Dockerfile's name inside the context, and its contents when it lives outside.
fn dockerfile(args: &BuildArgs) -> CliResult<(String, Option<Vec<u8>>)> {
    let Some(file) = &args.file else {
        return Ok(("Dockerfile".to_owned(), None));
    };
    let canonical = |p: &Path| {
        std::fs::canonicalize(p).map_err(|e| {
            CliError::new(
                1,
                format!("unable to prepare context: {}: {e}", p.display()),
            )
        })
    };
    let context = canonical(&args.context)?;
    let full = canonical(file)?;
    match full.strip_prefix(&context) {
        Ok(rel) => Ok((rel.to_string_lossy().into_owned(), None)),
        Err(_) => {
            let data = std::fs::read(&full)
                .map_err(|e| CliError::new(1, format!("reading {}: {e}", full.display())))?;
            Ok((OUTSIDE_DOCKERFILE.to_owned(), Some(data)))
        }
    }
}

/// `vmrun build`.
pub async fn build(api: &Api, args: &BuildArgs) -> CliResult<i32> {
    let from_stdin = args.context.as_os_str() == "-";
    let (dockerfile, packed) = if from_stdin {
        let file = args
            .file
            .as_ref()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "Dockerfile".to_owned());
        let packed = tokio::task::spawn_blocking(stdin_context)
            .await
            .map_err(|e| CliError::new(1, format!("reading standard input: {e}")))??;
        (file, packed)
    } else {
        let (dockerfile, outside) = dockerfile(args)?;
        let context = args.context.clone();
        let keep = [dockerfile.clone(), ".dockerignore".to_owned()];
        let packed = tokio::task::spawn_blocking(move || {
            let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
            let extra = outside.as_deref().map(|d| (OUTSIDE_DOCKERFILE, d));
            vmrun_builder::pack_context(&context, &keep, extra, Vec::new())
        })
        .await
        .map_err(|e| CliError::new(1, format!("packing the build context: {e}")))?
        .map_err(|e| CliError::new(1, format!("unable to prepare context: {e}")))?;
        (dockerfile, packed)
    };
    if !args.quiet {
        println!(
            "Sending build context to Docker daemon  {}",
            human_size(packed.len() as f64)
        );
    }
    let mut query = vec![format!("dockerfile={}", raw::encode(&dockerfile))];
    for tag in &args.tags {
        query.push(format!("t={}", raw::encode(tag)));
    }
    let flags = [
        ("nocache", args.no_cache),
        ("pull", args.pull),
        ("q", args.quiet),
        ("forcerm", args.force_rm),
    ];
    for (name, on) in flags {
        if on {
            query.push(format!("{name}=1"));
        }
    }
    query.push(format!("rm={}", if args.rm { 1 } else { 0 }));
    if !args.build_args.is_empty() {
        query.push(format!(
            "buildargs={}",
            raw::encode(&pairs_json(&args.build_args, true))
        ));
    }
    if !args.labels.is_empty() {
        query.push(format!(
            "labels={}",
            raw::encode(&pairs_json(&args.labels, false))
        ));
    }
    if let Some(target) = &args.target {
        query.push(format!("target={}", raw::encode(target)));
    }
    query.push(format!("networkmode={}", raw::encode(&args.network)));
    if let Some(isolation) = &args.isolation {
        query.push(format!("isolation={}", raw::encode(isolation)));
    }
    let path = format!("{}/build?{}", api.version_prefix(), query.join("&"));
    let body = std::io::Cursor::new(packed);
    let response = raw::request_streaming(
        &api.socket,
        hyper::Method::POST,
        &path,
        body,
        "application/x-tar",
    )
    .await
    .map_err(fail)?;
    let status = StepStatus::new(args.quiet);
    let shown = relay(response.into_body().into_data_stream(), &status).await;
    status.finish();
    let image_id = shown?;
    if let (Some(file), Some(id)) = (&args.iidfile, &image_id) {
        std::fs::write(file, id).map_err(|e| {
            CliError::new(
                1,
                format!("writing the image ID to {}: {e}", file.display()),
            )
        })?;
    }
    Ok(0)
}

/// Prints the daemon's progress lines as they come; returns the built image's id.
async fn relay(
    mut frames: impl futures::Stream<Item = Result<bytes::Bytes, hyper::Error>> + Unpin,
    status: &StepStatus,
) -> CliResult<Option<String>> {
    let mut pending = Vec::new();
    let mut image_id = None;
    while let Some(chunk) = frames.next().await {
        let chunk =
            chunk.map_err(|e| CliError::new(1, format!("reading the build output: {e}")))?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if let Some(id) = show(&line, status)? {
                image_id = Some(id);
            }
        }
    }
    if let Some(id) = show(&pending, status)? {
        image_id = Some(id);
    }
    Ok(image_id)
}

/// Prints one progress line; returns the image id of an `aux` line; a failure
/// becomes the error (its `code`, 1 when absent, is the exit status).
fn show(line: &[u8], status: &StepStatus) -> CliResult<Option<String>> {
    let text = String::from_utf8_lossy(line);
    if text.trim().is_empty() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|e| CliError::new(1, format!("unexpected build output {text:?}: {e}")))?;
    if let Some(message) = v["error"].as_str() {
        let code = v["errorDetail"]["code"]
            .as_i64()
            .filter(|c| *c != 0)
            .unwrap_or(1);
        return Err(CliError::new(code as i32, message.to_owned()));
    }
    if let Some(stream) = v["stream"].as_str() {
        status.print(stream);
    } else if let Some(text) = v["status"].as_str() {
        status.print(&format!("{text}\n"));
    }
    Ok(v["aux"]["ID"].as_str().map(str::to_owned))
}
