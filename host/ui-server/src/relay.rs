//! Streams of the daemon relayed as events, for any front-end transport (the browser
//! adapter's WebSocket, the Tauri shell's channels): a streaming request (events, logs,
//! stats, pull progress) and an interactive exec terminal.

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::daemon::DaemonClient;

/// What a relayed stream reports, in order: one `Status`, any `Data`, one `End`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The daemon's HTTP status (0 when the request never reached it).
    Status(u16),
    /// Bytes of the body (or of the terminal's output).
    Data(Bytes),
    /// The stream ended, with the reason if it failed.
    End(Option<String>),
}

/// Relays `method path` (with `body`) and sends its response as events to `tx`. Returns
/// when the body ended, the daemon failed, or `tx`'s receiver went away.
pub async fn relay_stream(
    client: &DaemonClient,
    method: &str,
    path: &str,
    body: Option<String>,
    tx: mpsc::Sender<StreamEvent>,
) {
    let headers = match body {
        Some(_) => vec![("content-type".to_string(), "application/json".to_string())],
        None => Vec::new(),
    };
    let body = Bytes::from(body.unwrap_or_default());
    let response = match client.request(method, path, &headers, body).await {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(StreamEvent::Status(0)).await;
            let _ = tx.send(StreamEvent::End(Some(e.to_string()))).await;
            return;
        }
    };
    if tx
        .send(StreamEvent::Status(response.status().as_u16()))
        .await
        .is_err()
    {
        return;
    }
    let mut body = response.into_body();
    let end = loop {
        match body.frame().await {
            None => break None,
            Some(Err(e)) => break Some(e.to_string()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() && tx.send(StreamEvent::Data(data)).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let _ = tx.send(StreamEvent::End(end)).await;
}

/// Starts the TTY exec `exec_id` and relays it: its output as `Data` events to `tx`,
/// bytes from `stdin` to its input. Returns when the terminal closed or `tx` went away.
pub async fn relay_exec(
    client: &DaemonClient,
    exec_id: &str,
    mut stdin: mpsc::Receiver<Bytes>,
    tx: mpsc::Sender<StreamEvent>,
) {
    let io = match client.exec_hijack(exec_id).await {
        Ok(Ok(io)) => io,
        Ok(Err((status, body))) => {
            let message = daemon_message(&body);
            let _ = tx.send(StreamEvent::Status(status.as_u16())).await;
            let _ = tx.send(StreamEvent::End(Some(message))).await;
            return;
        }
        Err(e) => {
            let _ = tx.send(StreamEvent::Status(0)).await;
            let _ = tx.send(StreamEvent::End(Some(e.to_string()))).await;
            return;
        }
    };
    if tx.send(StreamEvent::Status(101)).await.is_err() {
        return;
    }
    let (mut reader, mut writer) = tokio::io::split(io);
    let input = async move {
        while let Some(data) = stdin.recv().await {
            if writer.write_all(&data).await.is_err() || writer.flush().await.is_err() {
                break;
            }
        }
        // The front end closed its side: keep reading what the shell still prints.
        std::future::pending::<()>().await;
    };
    let tx_out = tx.clone();
    let output = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => return None,
                Ok(n) => {
                    let data = Bytes::copy_from_slice(&buf[..n]);
                    if tx_out.send(StreamEvent::Data(data)).await.is_err() {
                        return None;
                    }
                }
                Err(e) => return Some(e.to_string()),
            }
        }
    };
    let end = tokio::select! {
        end = output => end,
        () = input => None,
    };
    let _ = tx.send(StreamEvent::End(end)).await;
}

/// The `message` of a daemon's JSON error body, else the body as text.
pub fn daemon_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).to_string();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or(text)
}
