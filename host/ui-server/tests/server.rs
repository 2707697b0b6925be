//! The adapter end to end over real sockets: a fake daemon on a Unix socket (hyper), the
//! adapter on 127.0.0.1, raw HTTP and WebSocket clients.

use std::convert::Infallible;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener};
use tokio_tungstenite::tungstenite::Message;
use vmrun_ui_server::{UiConfig, UiServer};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A daemon double: `/_ping` → OK, `/echo` → method + path + body, `/stream` → three
/// chunks over time.
async fn fake_daemon(socket: &Path) {
    let listener = UnixListener::bind(socket).expect("bind fake daemon");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().to_string();
                    let method = req.method().to_string();
                    let body: Body = if path.starts_with("/stream") {
                        let chunks = futures::stream::iter(["one\n", "two\n", "three\n"]).then(
                            |c| async move {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                Ok::<_, Infallible>(Frame::data(Bytes::from(c)))
                            },
                        );
                        BodyExt::boxed(StreamBody::new(chunks))
                    } else {
                        let data = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let text = format!("{method} {path} {}", String::from_utf8_lossy(&data));
                        BodyExt::boxed(Full::new(Bytes::from(text)))
                    };
                    Ok::<_, Infallible>(Response::new(body))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn start(dir: &Path, with_daemon: bool) -> (String, u16, String) {
    let socket = dir.join("d.sock");
    if with_daemon {
        fake_daemon(&socket).await;
    }
    let assets = dir.join("dist");
    std::fs::create_dir_all(&assets).expect("assets dir");
    std::fs::write(
        assets.join("index.html"),
        "<!doctype html><title>vmrun</title>",
    )
    .expect("index");
    let server = UiServer::bind(UiConfig {
        socket,
        assets,
        port: 0,
        token: None,
        start_daemon: None,
    })
    .await
    .expect("bind");
    let (url, port, token) = (
        server.url(),
        server.addr().port(),
        server.token().to_string(),
    );
    tokio::spawn(server.serve_until(std::future::pending()));
    (url, port, token)
}

/// One raw HTTP/1.1 request; returns the status and the body.
async fn http(port: u16, head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let req = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn requests_need_the_token_and_a_loopback_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, port, token) = start(dir.path(), true).await;
    assert!(url.ends_with(&format!("/?token={token}")));
    let host = format!("Host: 127.0.0.1:{port}");
    // Static files need no token.
    let (status, body) = http(port, &format!("GET / HTTP/1.1\r\n{host}"), "").await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>vmrun</title>"));
    // The API does.
    let (status, _) = http(
        port,
        &format!("GET /api/docker/_ping HTTP/1.1\r\n{host}"),
        "",
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = http(
        port,
        &format!(
            "GET /api/docker/_ping HTTP/1.1\r\n{host}\r\nX-Vmrun-Token: {}x",
            &token[1..]
        ),
        "",
    )
    .await;
    assert_eq!(status, 401);
    // A rebound name is refused even with the token.
    let (status, _) = http(
        port,
        &format!(
            "GET /api/docker/_ping HTTP/1.1\r\nHost: evil.example:{port}\r\nX-Vmrun-Token: {token}"
        ),
        "",
    )
    .await;
    assert_eq!(status, 403);
    // With both, the request reaches the daemon as it was made.
    let (status, body) = http(
        port,
        &format!("POST /api/docker/containers/create?name=a HTTP/1.1\r\n{host}\r\nX-Vmrun-Token: {token}\r\nContent-Type: application/json"),
        r#"{"Image":"busybox"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"POST /containers/create?name=a {"Image":"busybox"}"#
    );
    // The start action is absent unless the embedding binary gives one.
    let (status, _) = http(
        port,
        &format!("POST /ui/daemon/start HTTP/1.1\r\n{host}\r\nX-Vmrun-Token: {token}"),
        "",
    )
    .await;
    assert_eq!(status, 501);
}

#[tokio::test]
async fn a_missing_daemon_is_a_502_saying_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, port, token) = start(dir.path(), false).await;
    let (status, body) = http(
        port,
        &format!(
            "GET /api/docker/_ping HTTP/1.1\r\nHost: localhost:{port}\r\nX-Vmrun-Token: {token}"
        ),
        "",
    )
    .await;
    assert_eq!(status, 502);
    assert!(body.contains(r#""reason":"daemon-down""#), "{body}");
}

#[tokio::test]
async fn streams_are_multiplexed_over_the_websocket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, port, token) = start(dir.path(), true).await;
    // Wrong token: the upgrade is refused.
    let bad =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws?token=nope")).await;
    assert!(bad.is_err());
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws?token={token}"))
            .await
            .expect("ws");
    for id in [7, 8] {
        let op = serde_json::json!({"op": "open", "id": id, "method": "GET", "path": "/stream", "body": null});
        ws.send(Message::Text(op.to_string().into()))
            .await
            .expect("send");
    }
    let mut data: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut ended = 0;
    while ended < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .expect("open socket")
            .expect("a frame");
        match msg {
            Message::Binary(b) => {
                let id = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                data[(id - 7) as usize].extend_from_slice(&b[4..]);
            }
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
                if v["type"] == "status" {
                    assert_eq!(v["status"], 200, "{v}");
                }
                if v["type"] == "end" {
                    assert!(v["error"].is_null(), "{v}");
                    ended += 1;
                }
            }
            _ => {}
        }
    }
    assert_eq!(data[0], b"one\ntwo\nthree\n");
    assert_eq!(data[1], b"one\ntwo\nthree\n");
}
