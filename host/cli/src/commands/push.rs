//! `vmrun push [-q] NAME[:TAG]`: `POST /images/{name}/push`, with the progress
//! stream rendered like docker's (the renderer `vmrun pull` uses: one live
//! line per layer on a terminal, plain `id: status` lines elsewhere).
//!
//! The request is sent raw rather than through bollard: bollard's push
//! messages drop the layer `id`, which per-layer progress needs.

use base64::Engine as _;
use http_body_util::BodyExt;
use serde::Deserialize;

use super::pull::{full_reference, image_registry, Output, Renderer};
use crate::api::{raw, Api};
use crate::error::{daemon_message, status_code, CliError, CliResult};
use crate::format::images::split_repo_tag;

/// Arguments of `push`.
#[derive(Debug, Clone, clap::Args)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Skip image signing (accepted for compatibility)
    #[arg(long = "disable-content-trust", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub disable_content_trust: bool,
    /// The image: NAME[:TAG]
    pub image: String,
}

/// One message of the daemon's progress stream.
#[derive(Debug, Default, Deserialize)]
struct Message {
    status: Option<String>,
    id: Option<String>,
    #[serde(rename = "progressDetail")]
    progress_detail: Option<Detail>,
    #[serde(rename = "errorDetail")]
    error_detail: Option<ErrorDetail>,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Detail {
    current: Option<i64>,
    total: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

impl Message {
    /// The error this message carries, if it is one.
    fn error(&self) -> Option<String> {
        self.error_detail
            .as_ref()
            .and_then(|d| d.message.clone())
            .or_else(|| self.error.clone())
    }

    fn bytes(&self) -> Option<(i64, i64)> {
        let detail = self.progress_detail.as_ref()?;
        Some((detail.current?, detail.total?)).filter(|(_, total)| *total > 0)
    }
}

/// `vmrun push [-a] [-q] NAME[:TAG]`.
pub async fn push(api: &Api, args: &PushArgs) -> CliResult<i32> {
    if args.image.contains('@') {
        return Err(CliError::new(
            1,
            format!("cannot push a digest reference: {}", args.image),
        ));
    }
    let (repo, tag) = split_repo_tag(&args.image);
    if args.all_tags && !tag.is_empty() {
        return Err(CliError::new(
            1,
            "tag can't be used with --all-tags/-a".to_owned(),
        ));
    }
    let tag = match (args.all_tags, tag.is_empty()) {
        (true, _) => String::new(),
        (false, true) => "latest".to_owned(),
        (false, false) => tag,
    };
    let output = if args.quiet {
        Output::Quiet
    } else {
        Output::Stdout
    };
    push_image(api, &repo, &tag, output)
        .await
        .map_err(|message| CliError::new(1, message))?;
    if args.quiet {
        let shown = if tag.is_empty() {
            repo
        } else {
            format!("{repo}:{tag}")
        };
        println!("{}", full_reference(&shown));
    }
    Ok(0)
}

/// Pushes `repo:tag` (every tag of `repo` when `tag` is empty) through the
/// daemon, rendering its progress on `output`. The error is the message to print.
async fn push_image(api: &Api, repo: &str, tag: &str, output: Output) -> Result<(), String> {
    let path = format!(
        "{}/images/{repo}/push?tag={}",
        api.version_prefix(),
        raw::encode(tag)
    );
    let mut headers = Vec::new();
    if let Some(credentials) = super::login::stored_credentials(&image_registry(repo)) {
        let json = serde_json::to_string(&credentials).map_err(|e| e.to_string())?;
        headers.push((
            "X-Registry-Auth",
            base64::engine::general_purpose::URL_SAFE.encode(json),
        ));
    }
    let response =
        raw::request_with_headers(&api.socket, hyper::Method::POST, &path, None, &headers)
            .await
            .map_err(|e| {
                let message = daemon_message(&e);
                if matches!(status_code(&e), Some(404 | 405 | 501))
                    && message.contains("page not found")
                {
                    format!("pushing images is not supported by this daemon yet ({message})")
                } else {
                    message
                }
            })?;
    let mut body = response.into_body();
    let mut renderer = Renderer::new(output);
    let mut pending: Vec<u8> = Vec::new();
    let result = loop {
        let frame = match body.frame().await {
            None => break Ok(()),
            Some(Err(e)) => break Err(format!("reading the push progress: {e}")),
            Some(Ok(frame)) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        if let Err(message) = show_lines(&mut pending, &mut renderer) {
            break Err(message);
        }
    };
    renderer.finish();
    result
}

/// Shows every complete line of `pending` (keeping a partial last one); the
/// first error message in the stream ends the push.
fn show_lines(pending: &mut Vec<u8>, renderer: &mut Renderer) -> Result<(), String> {
    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let message: Message = serde_json::from_slice(&line).map_err(|e| {
            format!(
                "unexpected push progress from the daemon ({e}): {}",
                String::from_utf8_lossy(&line).trim()
            )
        })?;
        if let Some(error) = message.error() {
            return Err(error);
        }
        if let Some(status) = message.status.as_deref() {
            let id = message.id.as_deref().filter(|i| !i.is_empty());
            renderer.show_event(id, status, message.bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_lines_are_parsed_and_errors_stop_the_push() {
        let mut renderer = Renderer::new(Output::Quiet);
        let mut pending = br#"{"status":"The push refers to repository [r:5000/x]"}
{"status":"Pushing","progressDetail":{"current":1,"total":2},"progress":"[=>  ]","id":"0123456789ab"}
{"progress":"","aux":{"Tag":"latest","Digest":"sha256:a","Size":1}}
{"status":"Pus"#
            .to_vec();
        show_lines(&mut pending, &mut renderer).unwrap();
        assert_eq!(pending, br#"{"status":"Pus"#.to_vec());
        pending.extend_from_slice(b"hed\",\"id\":\"0123456789ab\"}\n");
        show_lines(&mut pending, &mut renderer).unwrap();
        assert!(pending.is_empty());
        let mut failing =
            br#"{"errorDetail":{"message":"registry r:5000: down"},"error":"registry r:5000: down"}
"#
            .to_vec();
        assert_eq!(
            show_lines(&mut failing, &mut renderer).unwrap_err(),
            "registry r:5000: down"
        );
        let mut garbage = b"nope\n".to_vec();
        assert!(show_lines(&mut garbage, &mut renderer)
            .unwrap_err()
            .contains("unexpected push progress"));
        renderer.finish();
    }

    #[test]
    fn messages_carry_bytes_only_with_a_total() {
        let m: Message = serde_json::from_str(
            r#"{"status":"Pushing","progressDetail":{"current":5,"total":0}}"#,
        )
        .unwrap();
        assert_eq!(m.bytes(), None);
        let m: Message =
            serde_json::from_str(r#"{"status":"Pushed","progressDetail":{}}"#).unwrap();
        assert_eq!(m.bytes(), None);
        assert_eq!(m.error(), None);
    }
}
