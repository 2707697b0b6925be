//! `vmrun import file|- [REPOSITORY[:TAG]]`: `POST /images/create?fromSrc=-`
//! with the tarball streamed as the body; prints the new image's id, as docker does.

use http_body_util::BodyExt;

use super::fail;
use crate::api::{raw, Api};
use crate::error::{go_io_error, CliError, CliResult};
use crate::format::images::split_repo_tag;
use crate::opts::reference::check_reference;

/// Arguments of `import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// The tarball: a file, or `-` for standard input
    #[arg(value_name = "file|-")]
    pub source: String,
    /// Name for the new image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `vmrun import`.
pub async fn import(api: &Api, args: &ImportArgs) -> CliResult<i32> {
    let mut query = vec!["fromSrc=-".to_owned()];
    if let Some(reference) = &args.reference {
        query.extend(name_query(reference)?);
    }
    if let Some(message) = &args.message {
        query.push(format!("message={}", raw::encode(message)));
    }
    for change in &args.change {
        query.push(format!("changes={}", raw::encode(change)));
    }
    if let Some(platform) = &args.platform {
        query.push(format!("platform={}", raw::encode(platform)));
    }
    if args.source.contains("://") {
        return Err(CliError::new(
            1,
            format!(
                "importing from a URL ({}) is not supported: download it, then import the file",
                args.source
            ),
        ));
    }
    let path = format!("{}/images/create?{}", api.version_prefix(), query.join("&"));
    let source: Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin> = if args.source == "-" {
        Box::new(tokio::io::stdin())
    } else {
        let file = tokio::fs::File::open(&args.source)
            .await
            .map_err(|e| CliError::new(1, format!("open {}: {}", args.source, go_io_error(&e))))?;
        Box::new(file)
    };
    let response = raw::request_streaming(
        &api.socket,
        hyper::Method::POST,
        &path,
        source,
        "application/x-tar",
    )
    .await
    .map_err(fail)?;
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| CliError::new(1, format!("reading the import answer: {e}")))?
        .to_bytes();
    for line in String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| CliError::new(1, format!("unexpected import answer {line:?}: {e}")))?;
        if let Some(message) = v["errorDetail"]["message"].as_str() {
            return Err(CliError::new(1, message.to_owned()));
        }
        if let Some(status) = v["status"].as_str() {
            println!("{status}");
        }
    }
    Ok(0)
}

/// The `repo=…&tag=…` query parameters that name an image made by the daemon
/// (`import`, `commit`), after checking `reference` as docker does.
pub(super) fn name_query(reference: &str) -> CliResult<Vec<String>> {
    check_reference(reference).map_err(|e| CliError::new(1, e))?;
    let (repo, tag) = split_repo_tag(reference);
    let mut query = vec![format!("repo={}", raw::encode(&repo))];
    if !tag.is_empty() {
        query.push(format!("tag={}", raw::encode(&tag)));
    }
    Ok(query)
}
