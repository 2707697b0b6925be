//! `vmrun run` and `vmrun create`, following the docker CLI's flow:
//! create (pulling on "No such image" when the daemon can), attach, wait
//! (`next-exit`, or `removed` with `--rm`), start, stream, exit status.

use std::io::IsTerminal;

use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptionsBuilder};
use http_body_util::BodyExt;

use crate::api::{raw, Api};
use crate::attach::{self, RawTerminal, ResizeTarget};
use crate::error::{
    daemon_message, start_error_code, status_code, CliError, CliResult, EXIT_CLI_ERROR,
};
use crate::format::images::split_repo_tag;
use crate::opts::run_config::{build_create_request, ContainerFlags, CreateRequest};

/// Arguments of `run` and `create`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Container options, then IMAGE [COMMAND] [ARG...]
    #[command(flatten)]
    pub flags: ContainerFlags,
}

/// Validates the flags and builds the create request, without any API call.
pub fn prepare(args: &RunArgs) -> CliResult<CreateRequest> {
    let flags = &args.flags;
    // The image operand takes what follows it verbatim, so an unknown flag before the
    // image lands there: refuse it as the unknown flag it is.
    if let Some(flag) = flags
        .image_and_command
        .first()
        .filter(|a| a.starts_with('-'))
    {
        let name = flag.split('=').next().unwrap_or(flag);
        return Err(CliError::usage(format!(
            "unknown flag: {name}\nSee 'vmrun run --help'."
        )));
    }
    if flags.tty && flags.interactive && !flags.detach && !std::io::stdin().is_terminal() {
        return Err(CliError::new(1, "the input device is not a TTY"));
    }
    let mut req = build_create_request(flags, &|name| std::env::var(name).ok(), &|path| {
        std::fs::read_to_string(path)
    })
    .map_err(|e| CliError::usage(e.to_string()))?;
    // Like docker: the container's terminal starts at the local terminal's size, so a
    // program that asks for it at once (`stty size`) does not see 0x0.
    if flags.tty {
        if let (Some((rows, cols)), Some(hc)) = (
            crate::attach::local_terminal_size(),
            req.body.host_config.as_mut(),
        ) {
            hc.console_size = Some(vec![usize::from(rows), usize::from(cols)]);
        }
    }
    Ok(req)
}

/// `image` with `:latest` added when it names no tag or digest.
pub fn normalize_image(image: &str) -> String {
    let (_, tag) = split_repo_tag(image);
    if tag.is_empty() && !image.contains('@') {
        format!("{image}:latest")
    } else {
        image.to_string()
    }
}

/// Pulls `image` through `POST /images/create`, printing progress lines.
async fn pull(api: &Api, image: &str) -> CliResult<()> {
    super::pull::pull_image(api, image, None, super::pull::Output::Stderr)
        .await
        .map_err(|message| CliError::new(EXIT_CLI_ERROR, message))
}

/// Creates the container; on "No such image", says so and tries to pull it.
async fn create_container(api: &Api, request: &CreateRequest) -> CliResult<String> {
    let mut opts = CreateContainerOptionsBuilder::new();
    if let Some(name) = &request.name {
        opts = opts.name(name);
    }
    let opts = opts.build();
    let mut pulled = false;
    loop {
        match api
            .docker
            .create_container(Some(opts.clone()), request.body.clone())
            .await
        {
            Ok(created) => {
                for warning in &created.warnings {
                    eprintln!("WARNING: {warning}");
                }
                return Ok(created.id);
            }
            Err(e)
                if !pulled
                    && status_code(&e) == Some(404)
                    && daemon_message(&e).contains("No such image") =>
            {
                eprintln!(
                    "Unable to find image '{}' locally",
                    normalize_image(&request.image)
                );
                pull(api, &request.image).await?;
                pulled = true;
            }
            Err(e) => return Err(CliError::daemon(EXIT_CLI_ERROR, &e)),
        }
    }
}

/// `vmrun create`: prints the new container's ID.
pub async fn create(api: &Api, request: CreateRequest) -> CliResult<i32> {
    let id = create_container(api, &request).await?;
    println!("{id}");
    Ok(0)
}

/// A registered `wait`: the daemon has accepted it, the result comes later.
pub struct PendingWait(tokio::task::JoinHandle<CliResult<i64>>);

impl PendingWait {
    /// Waits for the container's exit status.
    pub async fn status(self) -> CliResult<i64> {
        self.0
            .await
            .map_err(|e| CliError::new(EXIT_CLI_ERROR, format!("wait task failed: {e}")))?
    }
}

/// Sends `POST /containers/{id}/wait?condition=...` and returns once the
/// daemon has answered with headers, i.e. once the waiter is registered.
pub async fn register_wait(api: &Api, id: &str, condition: &str) -> CliResult<PendingWait> {
    let path = format!(
        "{}/containers/{}/wait?condition={condition}",
        api.version_prefix(),
        raw::encode(id)
    );
    let response = raw::request(&api.socket, hyper::Method::POST, &path, None)
        .await
        .map_err(|e| CliError::daemon(EXIT_CLI_ERROR, &e))?;
    Ok(PendingWait(tokio::spawn(async move {
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| {
                CliError::new(EXIT_CLI_ERROR, format!("error waiting for container: {e}"))
            })?
            .to_bytes();
        parse_wait_body(&body)
    })))
}

/// Parses a wait response (`{"StatusCode":N,"Error":{"Message":"..."}}`).
pub fn parse_wait_body(body: &[u8]) -> CliResult<i64> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        CliError::new(
            EXIT_CLI_ERROR,
            format!("error waiting for container: bad response: {e}"),
        )
    })?;
    if let Some(message) = value
        .get("Error")
        .and_then(|e| e.get("Message"))
        .and_then(|m| m.as_str())
        .filter(|m| !m.is_empty())
    {
        return Err(CliError::new(
            EXIT_CLI_ERROR,
            format!("error waiting for container: {message}"),
        ));
    }
    value
        .get("StatusCode")
        .and_then(|c| c.as_i64())
        .ok_or_else(|| CliError::new(EXIT_CLI_ERROR, "error waiting for container: no StatusCode"))
}

/// Starts a created container, mapping errors to docker's 125/126/127.
pub async fn start_mapped(api: &Api, id: &str) -> CliResult<()> {
    api.docker.start_container(id, None).await.map_err(|e| {
        let message = daemon_message(&e);
        CliError::new(start_error_code(&message), message)
    })
}

/// Attaches to, waits for and starts container `id`, streams its stdio and
/// returns its exit status (shared by `run` and `start -a`).
pub async fn attach_start_wait(
    api: &Api,
    id: &str,
    interactive: bool,
    tty: bool,
    wait_condition: &str,
    start: bool,
) -> CliResult<i32> {
    let opts = AttachContainerOptionsBuilder::new()
        .stream(true)
        .stdin(interactive)
        .stdout(true)
        .stderr(true)
        .build();
    let attached = api
        .docker
        .attach_container(id, Some(opts))
        .await
        .map_err(|e| CliError::daemon(EXIT_CLI_ERROR, &e))?;
    let wait = register_wait(api, id, wait_condition).await?;
    let raw_mode = if tty && interactive {
        RawTerminal::stdin()
    } else {
        None
    };
    if start {
        if let Err(e) = start_mapped(api, id).await {
            drop(raw_mode);
            if wait_condition == "removed" {
                // Give the daemon a moment to auto-remove, as docker does.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(3), wait.status()).await;
            }
            return Err(e);
        }
    }
    let _resize = tty.then(|| {
        attach::spawn_resize_monitor(api.clone(), ResizeTarget::Container(id.to_string()))
    });
    let _signals = (!tty).then(|| attach::spawn_signal_proxy(api, id));
    let streamed = attach::stream_stdio(attached.output, attached.input, interactive).await;
    drop(raw_mode);
    if let Err(e) = streamed {
        tracing::debug!("attach stream ended with an error: {e}");
    }
    let status = wait.status().await?;
    Ok(i32::try_from(status).unwrap_or(EXIT_CLI_ERROR))
}

/// `vmrun run`.
pub async fn run(api: &Api, args: &RunArgs, request: CreateRequest) -> CliResult<i32> {
    let flags = &args.flags;
    let id = create_container(api, &request).await?;
    if flags.detach {
        start_mapped(api, &id).await?;
        println!("{id}");
        return Ok(0);
    }
    let condition = if flags.rm { "removed" } else { "next-exit" };
    attach_start_wait(api, &id, flags.interactive, flags.tty, condition, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_get_latest() {
        assert_eq!(normalize_image("busybox"), "busybox:latest");
        assert_eq!(normalize_image("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            normalize_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(normalize_image("app@sha256:abcd"), "app@sha256:abcd");
    }

    #[test]
    fn wait_bodies() {
        assert_eq!(
            parse_wait_body(br#"{"StatusCode":3,"Error":null}"#).unwrap(),
            3
        );
        assert_eq!(
            parse_wait_body(br#"{"StatusCode":0,"Error":{"Message":""}}"#).unwrap(),
            0
        );
        let err = parse_wait_body(br#"{"StatusCode":0,"Error":{"Message":"boom"}}"#).unwrap_err();
        assert_eq!(
            err.message.as_deref(),
            Some("error waiting for container: boom")
        );
        assert!(parse_wait_body(b"nope").is_err());
    }
}
