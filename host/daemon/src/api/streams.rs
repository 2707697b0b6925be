//! Streaming container routes: attach, logs, stats.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::response::Response;

use super::{hijack, json, query_bool, AppState};
use crate::backend::AttachOptions;
use crate::engine::logs::{parse_tail, LogOptions};
use crate::error::{ApiError, ApiResult};

type Q = Query<HashMap<String, String>>;

/// `POST /containers/{id}/attach`.
pub async fn attach(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
    req: Request,
) -> ApiResult<Response> {
    let rec = engine.container(&id)?;
    let opts = AttachOptions {
        stdin: query_bool(q.get("stdin")),
        stdout: query_bool(q.get("stdout")),
        stderr: query_bool(q.get("stderr")),
    };
    let io = engine.attach_container(&rec.id, opts).await?;
    Ok(hijack::serve(req, rec.tty(), io, async {}))
}

fn unix_seconds(v: Option<&String>) -> ApiResult<Option<f64>> {
    match v.filter(|s| !s.is_empty() && s.as_str() != "0") {
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
    Query(q): Q,
) -> ApiResult<Response> {
    let opts = LogOptions {
        stdout: query_bool(q.get("stdout")),
        stderr: query_bool(q.get("stderr")),
        follow: query_bool(q.get("follow")),
        tail: parse_tail(q.get("tail").map(String::as_str))?,
        timestamps: query_bool(q.get("timestamps")),
        since: unix_seconds(q.get("since"))?,
        until: unix_seconds(q.get("until"))?,
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
    Query(q): Q,
) -> ApiResult<Response> {
    let rec = engine.container(&id)?;
    let stream = q
        .get("stream")
        .is_none_or(|s| matches!(s.as_str(), "1" | "true" | "True"));
    let one_shot = query_bool(q.get("one-shot"));
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
