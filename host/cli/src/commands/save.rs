//! `vmrun save`: writes images as a docker-archive tar (`--format docker`, the
//! default, as `docker save`) or as an OCI image layout tar (`--format oci`),
//! from `GET /images/get?names=A&names=B[&format=oci]`. The OCI format is a
//! vmrun query extension bollard cannot send, so both formats go through the
//! raw request helper and stream the body to `-o FILE` or stdout.
//!
//! With `-o`, the archive is written to a temporary file in the same directory
//! and renamed at the end, so a failed save leaves no partial file.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::fail;
use crate::api::{raw, Api};
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
    query_format(&args.format)?;
    if args.output.is_none() && std::io::stdout().is_terminal() {
        return Err(CliError::new(
            1,
            "cowardly refusing to save to a terminal. Use the -o flag or redirect",
        ));
    }
    Ok(())
}

/// The `format` query value for `--format` (none for the default docker-archive).
fn query_format(format: &str) -> CliResult<Option<&'static str>> {
    match format {
        "docker" | "docker-archive" => Ok(None),
        "oci" | "oci-archive" => Ok(Some("oci")),
        other => Err(CliError::new(
            1,
            format!("unknown format {other:?}: use docker or oci"),
        )),
    }
}

/// `/images/get?names=A&names=B[&format=oci]`.
fn save_path(images: &[String], format: Option<&str>) -> String {
    let mut query: Vec<String> = images
        .iter()
        .map(|name| format!("names={}", raw::encode(name)))
        .collect();
    if let Some(f) = format {
        query.push(format!("format={f}"));
    }
    format!("/images/get?{}", query.join("&"))
}

/// `vmrun save`: streams the archive to `-o FILE` (through a temporary file
/// in the same directory, renamed at the end, so a failed save leaves no
/// partial file) or to stdout.
pub async fn save(api: &Api, args: &SaveArgs) -> CliResult<i32> {
    let path = format!(
        "{}{}",
        api.version_prefix(),
        save_path(&args.images, query_format(&args.format)?)
    );
    // Unknown images are refused (404) before the body starts, so nothing is
    // created for them.
    let response = raw::request(&api.socket, hyper::Method::GET, &path, None)
        .await
        .map_err(fail)?;
    let mut body = response.into_body();
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
            let result = write_file(&tmp_path, path, &mut body).await.and_then(|()| {
                std::fs::rename(&tmp_path, &dest)
                    .map_err(|e| CliError::new(1, format!("rename to {path}: {}", go_io_error(&e))))
            });
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp_path);
            }
            result?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            copy_body(&mut body, &mut out, "stdout").await?;
            out.flush()
                .map_err(|e| CliError::new(1, format!("write stdout: {}", go_io_error(&e))))?;
        }
    }
    Ok(0)
}

/// Copies the archive body into a new file at `tmp_path` (`shown` in errors) and syncs it.
async fn write_file(tmp_path: &Path, shown: &str, body: &mut Incoming) -> CliResult<()> {
    let mut file = std::fs::File::create(tmp_path)
        .map_err(|e| CliError::new(1, format!("open {shown}: {}", go_io_error(&e))))?;
    copy_body(body, &mut file, shown).await?;
    file.sync_all()
        .map_err(|e| CliError::new(1, format!("sync {shown}: {}", go_io_error(&e))))
}

/// Writes every data frame of `body` to `out` (`shown` in errors). A body
/// that ends early (the daemon failed mid-stream) is an error.
async fn copy_body(body: &mut Incoming, out: &mut impl Write, shown: &str) -> CliResult<()> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            CliError::new(1, format!("error reading the archive from the daemon: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            out.write_all(&data)
                .map_err(|e| CliError::new(1, format!("write {shown}: {}", go_io_error(&e))))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_map_to_the_query() {
        assert_eq!(query_format("docker").unwrap(), None);
        assert_eq!(query_format("docker-archive").unwrap(), None);
        assert_eq!(query_format("oci").unwrap(), Some("oci"));
        let err = query_format("tar").unwrap_err();
        assert_eq!(err.code, 1);
        assert!(err.message.unwrap().contains("\"tar\""));
    }

    #[test]
    fn names_are_repeated_and_encoded() {
        let images = vec!["busybox:latest".to_owned(), "r:5000/a b".to_owned()];
        assert_eq!(
            save_path(&images, Some("oci")),
            "/images/get?names=busybox:latest&names=r:5000%2Fa%20b&format=oci"
        );
        assert_eq!(
            save_path(&images[..1], None),
            "/images/get?names=busybox:latest"
        );
    }
}
