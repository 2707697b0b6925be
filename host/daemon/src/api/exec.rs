//! Exec routes.

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bollard_stubs::models::{ExecConfig, ExecInspectResponse, ExecStartConfig, ProcessConfig};

use super::{hijack, json, json_body, AppState};
use crate::backend::{AttachOptions, ExecSpec};
use crate::engine::EngineError;
use crate::error::ApiResult;

/// Exec routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

async fn create(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let cfg: ExecConfig = json_body(&body)?;
    let spec = ExecSpec {
        id: String::new(),
        cmd: cfg.cmd.clone().unwrap_or_default(),
        env: cfg.env.clone().unwrap_or_default(),
        workdir: cfg.working_dir.clone(),
        user: cfg.user.clone(),
        tty: cfg.tty.unwrap_or(false),
        open_stdin: cfg.attach_stdin.unwrap_or(false),
        privileged: cfg.privileged.unwrap_or(false),
        console_size: crate::backend::console_size(cfg.console_size.as_deref()),
    };
    let attach = AttachOptions {
        stdin: cfg.attach_stdin.unwrap_or(false),
        stdout: cfg.attach_stdout.unwrap_or(false),
        stderr: cfg.attach_stderr.unwrap_or(false),
    };
    let exec_id = engine.exec_create(&id, spec, attach)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "Id": exec_id })),
    )
        .into_response())
}

async fn start(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| crate::error::ApiError::bad_request(format!("reading the body: {e}")))?;
    let cfg: ExecStartConfig = json_body(&bytes)?;
    let req = Request::from_parts(parts, axum::body::Body::empty());
    if cfg.detach.unwrap_or(false) {
        engine.exec_start(&id, true).await?;
        return Ok(StatusCode::OK.into_response());
    }
    // Refusals (started already, container stopped) are answers before the upgrade, as
    // dockerd gives them; the process itself starts only once the upgrade's answer has
    // gone out, so its first output never travels with that answer's headers (clients
    // that read the stream from the raw socket, as docker-py does, would lose it).
    let (exec, _) = engine.exec_startable(&id)?;
    let tty = exec.spec.tty;
    let (start_engine, start_id) = (engine.clone(), id.clone());
    let io = async move {
        match start_engine.exec_start(&start_id, false).await {
            Ok(Some(io)) => Ok(io),
            Ok(None) => Err(EngineError::internal("the exec gave no stream")),
            // Like dockerd: once the exec exists, a failure to start it (no such command)
            // is reported inside the upgraded stream, and its exit code is 126.
            Err(EngineError::BadRequest(message)) => Ok(error_stream(&message, tty).await),
            Err(e) => Err(e),
        }
    };
    let (settle_engine, settle_id) = (engine.clone(), id.clone());
    Ok(hijack::serve(req, tty, io, async move {
        settle_engine.exec_settle(&settle_id).await
    }))
}

/// A stream that carries one error line (on stderr unless the exec has a terminal).
async fn error_stream(message: &str, tty: bool) -> Box<dyn crate::backend::AttachIo> {
    use tokio::io::AsyncWriteExt;
    let line = format!("OCI runtime exec failed: exec failed: {message}: unknown\r\n");
    let mut data = Vec::new();
    if tty {
        data.extend_from_slice(line.as_bytes());
    } else {
        vmrun_shim::frame::encode(
            vmrun_shim::frame::Stream::Stdout,
            line.as_bytes(),
            &mut data,
        );
    }
    let (mut writer, reader) = tokio::io::duplex(data.len().max(64));
    let _ = writer.write_all(&data).await;
    Box::new(reader)
}

async fn resize(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    super::query::DockerQuery(q): super::query::DockerQuery<super::containers::SizeQuery>,
) -> ApiResult<Response> {
    let (h, w) = super::containers::dims(&q)?;
    engine.exec_resize(&id, h, w).await?;
    Ok(StatusCode::OK.into_response())
}

async fn inspect(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let e = engine.exec_get(&id)?;
    let mut args = e.spec.cmd.clone();
    let entrypoint = if args.is_empty() {
        String::new()
    } else {
        args.remove(0)
    };
    Ok(json(&ExecInspectResponse {
        can_remove: Some(false),
        detach_keys: Some(String::new()),
        id: Some(id),
        running: Some(e.running),
        exit_code: e.exit_code.map(i64::from),
        process_config: Some(ProcessConfig {
            privileged: Some(e.spec.privileged),
            user: e.spec.user.clone(),
            tty: Some(e.spec.tty),
            entrypoint: Some(entrypoint),
            arguments: Some(args),
        }),
        open_stdin: Some(e.attach.stdin),
        open_stderr: Some(e.attach.stderr),
        open_stdout: Some(e.attach.stdout),
        container_id: Some(e.container_id.clone()),
        pid: Some(i64::from(e.pid)),
    }))
}
