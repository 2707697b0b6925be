//! Request bodies a handler answered without reading (an early 400/404, an unknown
//! route): read and discarded after the answer, so a keep-alive client (docker-py, the
//! Go SDK) that sends its body after the headers can go on using the connection instead
//! of writing into a closed socket (`EPIPE`). A body too large to drain (declared over
//! [`MAX_DRAIN`]) gets `Connection: close` on the answer instead.
//!
//! The middleware hands the handler a body that reads through a shared slot; when the
//! handler is done with it (dropped) before its end, the slot still holds the rest,
//! which a task reads to the end.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Frame, SizeHint};

/// The most of an unread body the daemon reads to keep the connection.
const MAX_DRAIN: u64 = 64 * 1024 * 1024;

/// How long the client may take to send the rest.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Shared {
    body: Mutex<Option<Body>>,
    /// The handler read the body to its end.
    done: AtomicBool,
    /// The handler let go of the body.
    dropped: AtomicBool,
}

/// The handler's view of the request body.
struct Tracked(Arc<Shared>);

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut slot = self.0.body.lock().unwrap_or_else(|p| p.into_inner());
        let Some(body) = slot.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.0.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let slot = self.0.body.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let slot = self.0.body.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(HttpBody::size_hint).unwrap_or_default()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::Release);
    }
}

/// The declared length of the request's body: `Some(None)` for a chunked one, `None`
/// when it has none (or the connection is being upgraded: attach and exec streams).
fn declared_body(req: &Request) -> Option<Option<u64>> {
    let h = req.headers();
    if h.contains_key(UPGRADE) {
        return None;
    }
    if h.contains_key(TRANSFER_ENCODING) {
        return Some(None);
    }
    let len = h
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())?;
    (len > 0).then_some(Some(len))
}

/// The middleware.
pub async fn drain_unread(req: Request, next: Next) -> Response {
    let Some(length) = declared_body(&req) else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let shared = Arc::new(Shared {
        body: Mutex::new(Some(body)),
        ..Shared::default()
    });
    let req = Request::from_parts(parts, Body::new(Tracked(shared.clone())));
    let mut res = next.run(req).await;
    if shared.done.load(Ordering::Acquire) || !shared.dropped.load(Ordering::Acquire) {
        return res;
    }
    let rest = shared.body.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(rest) = rest else {
        return res;
    };
    if length.is_some_and(|l| l > MAX_DRAIN) {
        res.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return res;
    }
    tokio::spawn(async move {
        if tokio::time::timeout(DRAIN_TIMEOUT, discard(rest))
            .await
            .is_err()
        {
            tracing::debug!("gave up waiting for an unread request body");
        }
    });
    res
}

/// Reads `body` to its end (at most [`MAX_DRAIN`] bytes).
async fn discard(body: Body) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut read = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                read += f.data_ref().map_or(0, |d| d.len() as u64);
                if read > MAX_DRAIN {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}
