//! The stream socket (`GET /ws`): many daemon streams over one WebSocket, so that a
//! browser's per-host connection limit never starves the dashboard.
//!
//! Client → server, text: `{"op":"open","id":N,"method":"GET","path":"/events","body":null}`
//! relays a streaming request; `{"op":"exec","id":N,"exec":"EXEC_ID"}` attaches to a TTY
//! exec instance; `{"op":"close","id":N}` ends stream N. Binary: a 4-byte big-endian
//! stream id, then bytes for that exec's input.
//!
//! Server → client, text: `{"id":N,"type":"status","status":200}` once the daemon
//! answered (0 when it could not be reached), `{"id":N,"type":"end","error":null}` at the
//! end. Binary: a 4-byte big-endian stream id, then body or terminal bytes.

use std::collections::HashMap;

use axum::extract::ws::{Message, WebSocket};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::daemon::DaemonClient;
use crate::relay::{relay_exec, relay_stream, StreamEvent};

/// Most streams one socket may have open at once.
const MAX_STREAMS: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum ClientOp {
    Open {
        id: u32,
        method: String,
        path: String,
        body: Option<String>,
    },
    Exec {
        id: u32,
        exec: String,
    },
    Close {
        id: u32,
    },
}

struct Stream {
    task: JoinHandle<()>,
    stdin: Option<mpsc::Sender<Bytes>>,
}

/// Encodes one server → client message for stream `id`.
pub fn encode(id: u32, event: StreamEvent) -> Message {
    match event {
        StreamEvent::Status(status) => Message::Text(
            serde_json::json!({ "id": id, "type": "status", "status": status })
                .to_string()
                .into(),
        ),
        StreamEvent::End(error) => Message::Text(
            serde_json::json!({ "id": id, "type": "end", "error": error })
                .to_string()
                .into(),
        ),
        StreamEvent::Data(data) => {
            let mut buf = BytesMut::with_capacity(4 + data.len());
            buf.put_u32(id);
            buf.put_slice(&data);
            Message::Binary(buf.freeze())
        }
    }
}

/// Runs one stream socket until the page closes it.
pub async fn session(socket: WebSocket, client: DaemonClient) {
    let (mut sink, mut incoming) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(256);
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if sink.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    while let Some(Ok(msg)) = incoming.next().await {
        match msg {
            Message::Text(text) => {
                let op = match serde_json::from_str::<ClientOp>(text.as_str()) {
                    Ok(op) => op,
                    Err(e) => {
                        tracing::debug!("bad stream socket message: {e}");
                        continue;
                    }
                };
                streams.retain(|_, s| !s.task.is_finished());
                match op {
                    ClientOp::Close { id } => {
                        if let Some(s) = streams.remove(&id) {
                            s.task.abort();
                        }
                    }
                    ClientOp::Open { id, .. } | ClientOp::Exec { id, .. }
                        if streams.len() >= MAX_STREAMS || streams.contains_key(&id) =>
                    {
                        let reason = if streams.contains_key(&id) {
                            "stream id in use"
                        } else {
                            "too many streams"
                        };
                        let _ = out_tx.send(encode(id, StreamEvent::Status(0))).await;
                        let _ = out_tx
                            .send(encode(id, StreamEvent::End(Some(reason.into()))))
                            .await;
                    }
                    ClientOp::Open {
                        id,
                        method,
                        path,
                        body,
                    } => {
                        let (tx, rx) = mpsc::channel(64);
                        let client = client.clone();
                        let relay =
                            async move { relay_stream(&client, &method, &path, body, tx).await };
                        let task = spawn_forward(id, relay, rx, out_tx.clone());
                        streams.insert(id, Stream { task, stdin: None });
                    }
                    ClientOp::Exec { id, exec } => {
                        let (tx, rx) = mpsc::channel(64);
                        let (stdin_tx, stdin_rx) = mpsc::channel(64);
                        let client = client.clone();
                        let relay = async move { relay_exec(&client, &exec, stdin_rx, tx).await };
                        let task = spawn_forward(id, relay, rx, out_tx.clone());
                        streams.insert(
                            id,
                            Stream {
                                task,
                                stdin: Some(stdin_tx),
                            },
                        );
                    }
                }
            }
            Message::Binary(data) => {
                if data.len() < 4 {
                    continue;
                }
                let id = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                if let Some(stdin) = streams.get(&id).and_then(|s| s.stdin.clone()) {
                    let _ = stdin.send(data.slice(4..)).await;
                }
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    for (_, s) in streams {
        s.task.abort();
    }
    writer.abort();
}

/// Runs `relay` and forwards its events, framed for stream `id`, to the socket's writer.
fn spawn_forward(
    id: u32,
    relay: impl std::future::Future<Output = ()> + Send + 'static,
    mut rx: mpsc::Receiver<StreamEvent>,
    out: mpsc::Sender<Message>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let forward = async move {
            while let Some(ev) = rx.recv().await {
                if out.send(encode(id, ev)).await.is_err() {
                    break;
                }
            }
        };
        tokio::join!(relay, forward);
    })
}
