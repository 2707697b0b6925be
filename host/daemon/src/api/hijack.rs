//! Docker's "hijacked" streams (attach, exec start): the HTTP connection becomes a raw
//! bidirectional byte stream after a `101 UPGRADED` answer.

use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;

use crate::backend::AttachIo;
use crate::engine::EngineError;

fn content_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Answer `req` by connecting the client to the stream `io` resolves to.
///
/// With an `Upgrade` header (every current client) the connection is upgraded and both
/// directions flow; without one, the output is sent as the response body. `after` runs
/// once the stream has ended, before the client's connection closes.
pub fn serve<F, A>(mut req: Request, tty: bool, io: F, after: A) -> Response
where
    F: Future<Output = Result<Box<dyn AttachIo>, EngineError>> + Send + 'static,
    A: Future<Output = ()> + Send + 'static,
{
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| !v.is_empty());
    if !wants_upgrade {
        let body = async_stream_body(io, after);
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type(tty))
            .body(body)
            .unwrap_or_default();
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("upgrade failed: {e}");
                return;
            }
        };
        let client = TokioIo::new(upgraded);
        match io.await {
            Ok(stream) => pump(client, stream, after).await,
            Err(e) => {
                tracing::debug!("attach failed: {e}");
                after.await;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, content_type(tty))
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .unwrap_or_default()
}

/// Copy both ways until the process's side ends; the client's side ending only closes
/// the process's stdin.
async fn pump<C, A>(client: C, stream: Box<dyn AttachIo>, after: A)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin,
    A: Future<Output = ()> + Send,
{
    use tokio::io::AsyncWriteExt;
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(stream);
    let to_process = async {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
        std::future::pending::<()>().await
    };
    let to_client = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        after.await;
        let _ = cw.shutdown().await;
    };
    tokio::select! {
        () = to_client => {}
        () = to_process => {}
    }
}

fn async_stream_body<F, A>(io: F, after: A) -> Body
where
    F: Future<Output = Result<Box<dyn AttachIo>, EngineError>> + Send + 'static,
    A: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        if let Ok(stream) = io.await {
            let (rd, _wr) = tokio::io::split(stream);
            let mut frames = tokio_util::io::ReaderStream::new(rd);
            use futures::StreamExt;
            while let Some(chunk) = frames.next().await {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
        }
        after.await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}
