//! Streaming container routes: attach, logs, stats.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use serde::Deserialize;

use super::query::{docker_bool, docker_bool_default_true, yes, DockerQuery};
use super::{hijack, json, AppState};
use crate::backend::AttachOptions;
use crate::engine::logs::{parse_tail, LogOptions};
use crate::error::{ApiError, ApiResult};

/// `attach`'s parameters.
#[derive(Deserialize)]
pub struct AttachQuery {
    #[serde(default, deserialize_with = "docker_bool")]
    stdin: bool,
    #[serde(default, deserialize_with = "docker_bool")]
    stdout: bool,
    #[serde(default, deserialize_with = "docker_bool")]
    stderr: bool,
}

/// `logs`' parameters.
#[derive(Deserialize)]
pub struct LogsQuery {
    #[serde(default, deserialize_with = "docker_bool")]
    stdout: bool,
    #[serde(default, deserialize_with = "docker_bool")]
    stderr: bool,
    #[serde(default, deserialize_with = "docker_bool")]
    follow: bool,
    #[serde(default, deserialize_with = "docker_bool")]
    timestamps: bool,
    tail: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// `stats`' parameters.
#[derive(Deserialize)]
pub struct StatsQuery {
    #[serde(default = "yes", deserialize_with = "docker_bool_default_true")]
    stream: bool,
    #[serde(rename = "one-shot", default, deserialize_with = "docker_bool")]
    one_shot: bool,
}

/// `POST /containers/{id}/attach`.
pub async fn attach(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<AttachQuery>,
    req: Request,
) -> ApiResult<Response> {
    let rec = engine.container(&id)?;
    let opts = AttachOptions {
        stdin: q.stdin,
        stdout: q.stdout,
        stderr: q.stderr,
    };
    let io = engine.attach_container(&rec.id, opts).await?;
    Ok(hijack::serve(req, rec.tty(), io, async {}))
}

fn unix_seconds(v: Option<&str>) -> ApiResult<Option<f64>> {
    match v.filter(|s| !s.is_empty() && *s != "0") {
        None => Ok(None),
        Some(s) => s
            .parse::<f64>()
            .map(Some)
            .or_else(|_| {
                chrono::DateTime::parse_from_rfc3339(s).map(|t| Some(t.timestamp() as f64))
            })
            .map_err(|_| ApiError::bad_request(format!("invalid time value: {s}"))),
    }
}

/// `GET /containers/{id}/logs`.
pub async fn logs(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<LogsQuery>,
) -> ApiResult<Response> {
    let opts = LogOptions {
        stdout: q.stdout,
        stderr: q.stderr,
        follow: q.follow,
        tail: parse_tail(q.tail.as_deref())?,
        timestamps: q.timestamps,
        since: unix_seconds(q.since.as_deref())?,
        until: unix_seconds(q.until.as_deref())?,
    };
    let (tty, stream) = engine.container_logs(&id, opts)?;
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(Response::builder()
        .header("Content-Type", ct)
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// `GET /containers/{id}/stats`: one sample, or one per second with `stream=1` (default).
pub async fn stats(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<StatsQuery>,
) -> ApiResult<Response> {
    let rec = engine.container(&id)?;
    let (stream, one_shot) = (q.stream, q.one_shot);
    let first = engine.container_stats(&rec, None).await?;
    if !stream {
        let sample = if one_shot {
            first
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            engine.container_stats(&rec, Some(&first)).await?
        };
        return Ok(json(&sample));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut prev = first;
        loop {
            let mut line = serde_json::to_vec(&prev).unwrap_or_default();
            line.push(b'\n');
            if tx.send(Ok(Bytes::from(line))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            match engine.container_stats(&rec, Some(&prev)).await {
                Ok(s) => prev = s,
                Err(_) => return,
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Response::builder()
        .header("Content-Type", "application/json")
        .body(Body::from_stream(body))
        .unwrap_or_default())
}
