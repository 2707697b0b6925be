//! `vmrun save`: writes images as a docker-archive tar, from `GET /images/get`.
//!
//! Only the docker-archive format goes through the API client for now; the
//! daemon also serves an OCI layout with the vmrun query extension
//! `GET /images/get?names=…&format=oci`, which bollard cannot send, so
//! `--format oci` is refused here with a message saying so.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;

use super::fail;
use crate::api::Api;
use crate::error::{go_io_error, CliError, CliResult};

/// Arguments of `save`.
#[derive(Debug, Clone, clap::Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Archive format: docker (docker-archive) or oci
    #[arg(long, default_value = "docker")]
    pub format: String,
    /// Images to save
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Checks the arguments before any API call.
pub fn prepare(args: &SaveArgs) -> CliResult<()> {
    match args.format.as_str() {
        "docker" | "docker-archive" => {}
        "oci" => {
            return Err(CliError::new(
                1,
                "--format oci is not available through the CLI yet; the daemon serves it at \
                 GET /images/get?names=IMAGE&format=oci",
            ))
        }
        other => {
            return Err(CliError::new(
                1,
                format!("unknown format {other:?}: use docker or oci"),
            ))
        }
    }
    if args.output.is_none() && std::io::stdout().is_terminal() {
        return Err(CliError::new(
            1,
            "cowardly refusing to save to a terminal. Use the -o flag or redirect",
        ));
    }
    Ok(())
}

/// `vmrun save`: streams the archive to `-o FILE` (through a temporary file
/// in the same directory, renamed at the end, so a failed save leaves no
/// partial file) or to stdout.
pub async fn save(api: &Api, args: &SaveArgs) -> CliResult<i32> {
    let names: Vec<&str> = args.images.iter().map(String::as_str).collect();
    let mut stream = api.docker.export_images(&names);
    match &args.output {
        Some(path) => {
            let dest = PathBuf::from(path);
            let dir = dest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let file_name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
            let tmp_path = dir.join(format!(
                ".{}.vmrun-save-{}",
                file_name.unwrap_or_default(),
                std::process::id()
            ));
            let result = write_file(&tmp_path, path, &mut stream)
                .await
                .and_then(|()| {
                    std::fs::rename(&tmp_path, &dest).map_err(|e| {
                        CliError::new(1, format!("rename to {path}: {}", go_io_error(&e)))
                    })
                });
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp_path);
            }
            result?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(fail)?;
                out.write_all(&chunk)
                    .map_err(|e| CliError::new(1, format!("write stdout: {}", go_io_error(&e))))?;
            }
            out.flush()
                .map_err(|e| CliError::new(1, format!("write stdout: {}", go_io_error(&e))))?;
        }
    }
    Ok(0)
}

/// Copies the archive stream into a new file at `tmp_path` (`shown` in errors) and syncs it.
async fn write_file<S>(tmp_path: &Path, shown: &str, stream: &mut S) -> CliResult<()>
where
    S: futures::Stream<Item = Result<bytes::Bytes, bollard::errors::Error>> + Unpin,
{
    let mut file = std::fs::File::create(tmp_path)
        .map_err(|e| CliError::new(1, format!("open {shown}: {}", go_io_error(&e))))?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(fail)?;
        file.write_all(&chunk)
            .map_err(|e| CliError::new(1, format!("write {shown}: {}", go_io_error(&e))))?;
    }
    file.sync_all()
        .map_err(|e| CliError::new(1, format!("sync {shown}: {}", go_io_error(&e))))
}
