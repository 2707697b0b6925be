//! Plain HTTP requests to the engine's Unix socket, for the few calls where
//! bollard's typed client does not fit: `_ping` with a short timeout, raw
//! JSON for `inspect` (so every field the daemon sends is printed, including
//! ones newer API models dropped, like `NetworkSettings.IPAddress`), and
//! `wait`, which must be registered (response headers received) before the
//! container is started.

use std::path::Path;
use std::time::Duration;

use bollard::errors::Error as ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// Sends one request on a fresh connection and returns the response once
/// its headers arrived. Error statuses become
/// [`ApiError::DockerResponseServerError`] with the daemon's message.
pub async fn request(
    socket: &Path,
    method: hyper::Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
) -> Result<Response<Incoming>, ApiError> {
    request_with_headers(socket, method, path_and_query, body, &[]).await
}

/// [`request`] with extra headers (e.g. `X-Registry-Auth`).
pub async fn request_with_headers(
    socket: &Path,
    method: hyper::Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, String)],
) -> Result<Response<Incoming>, ApiError> {
    let content_type = body.is_some().then_some("application/json");
    let body = Full::new(Bytes::from(body.unwrap_or_default()));
    send(socket, method, path_and_query, body, content_type, headers).await
}

/// [`request`] with a body streamed from `reader` (a tarball to import), so
/// large bodies never sit in memory whole.
pub async fn request_streaming(
    socket: &Path,
    method: hyper::Method,
    path_and_query: &str,
    reader: impl tokio::io::AsyncRead + Send + Sync + 'static,
    content_type: &str,
) -> Result<Response<Incoming>, ApiError> {
    use futures::TryStreamExt;
    let frames = tokio_util::io::ReaderStream::new(reader).map_ok(hyper::body::Frame::data);
    let body = http_body_util::StreamBody::new(frames);
    send(
        socket,
        method,
        path_and_query,
        body,
        Some(content_type),
        &[],
    )
    .await
}

/// Sends one request with `body` on a fresh connection (see [`request`]).
async fn send<B>(
    socket: &Path,
    method: hyper::Method,
    path_and_query: &str,
    body: B,
    content_type: Option<&str>,
    headers: &[(&str, String)],
) -> Result<Response<Incoming>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = UnixStream::connect(socket).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, B>(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("raw API connection ended: {e}");
        }
    });
    let mut builder = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(hyper::header::HOST, "vmrun")
        .header(
            hyper::header::USER_AGENT,
            concat!("vmrun-cli/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(content_type) = content_type {
        builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
    }
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    let req = builder.body(body)?;
    let response = sender.send_request(req).await?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let bytes = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or(text);
    Err(ApiError::DockerResponseServerError {
        status_code: status.as_u16(),
        message,
    })
}

/// `GET path` and parse the body as JSON.
pub async fn get_json(socket: &Path, path_and_query: &str) -> Result<serde_json::Value, ApiError> {
    let (_, value) = get_raw_json(socket, path_and_query).await?;
    Ok(value)
}

/// `POST path` with an empty JSON body (`null`, as docker's client sends
/// for an absent config), and the answer parsed as JSON.
pub async fn post_json(socket: &Path, path_and_query: &str) -> Result<serde_json::Value, ApiError> {
    let response = request(
        socket,
        hyper::Method::POST,
        path_and_query,
        Some(b"null".to_vec()),
    )
    .await?;
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&bytes)?)
}

/// `GET path`: the body as text (key order kept) and parsed.
pub async fn get_raw_json(
    socket: &Path,
    path_and_query: &str,
) -> Result<(String, serde_json::Value), ApiError> {
    let response = request(socket, hyper::Method::GET, path_and_query, None).await?;
    let bytes = response.into_body().collect().await?.to_bytes();
    let value = serde_json::from_slice(&bytes)?;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), value))
}

/// Whether the engine answers `GET /_ping` within `timeout`.
pub async fn ping(socket: &Path, timeout: Duration) -> bool {
    let attempt = async {
        let response = request(socket, hyper::Method::GET, "/_ping", None)
            .await
            .ok()?;
        response.into_body().collect().await.ok()
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(_)))
}

/// Percent-encodes a path segment or query value.
pub fn encode(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for b in component.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_components() {
        assert_eq!(encode("busybox:latest"), "busybox:latest");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }

    #[tokio::test]
    async fn ping_fails_fast_without_a_daemon() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!ping(&dir.path().join("none.sock"), Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn error_statuses_carry_the_daemon_message() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            let body = r#"{"message":"No such container: x"}"#;
            let resp = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).await.unwrap();
        });
        let err = get_json(&path, "/containers/x/json").await.unwrap_err();
        assert_eq!(crate::error::status_code(&err), Some(404));
        assert_eq!(
            crate::error::daemon_message(&err),
            "Error response from daemon: No such container: x"
        );
    }
}
