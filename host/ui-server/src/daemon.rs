//! The daemon's Unix socket as an HTTP/1.1 peer: one fresh connection per request (as
//! the CLI's raw client does), and the hijacked `POST /exec/{id}/start` of a terminal.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// Why a request did not reach the daemon or got no answer.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Nothing listens on the socket (the daemon is not running).
    #[error("cannot connect to the daemon at {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The request could not be built (a bad method or path).
    #[error("invalid request: {0}")]
    Request(String),
    /// The HTTP exchange failed.
    #[error("the daemon's connection failed: {0}")]
    Http(#[from] hyper::Error),
}

impl DaemonError {
    /// Whether the daemon is simply not there (as opposed to a failed exchange).
    pub fn is_down(&self) -> bool {
        matches!(self, DaemonError::Connect { .. })
    }
}

/// Headers of the browser's request that are passed on to the daemon.
pub const FORWARDED_HEADERS: [&str; 3] = ["content-type", "x-registry-auth", "x-registry-config"];

/// A client of the daemon's socket.
#[derive(Debug, Clone)]
pub struct DaemonClient {
    socket: PathBuf,
}

impl DaemonClient {
    /// A client of the daemon listening on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        DaemonClient {
            socket: socket.into(),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn connect(
        &self,
        upgrades: bool,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, DaemonError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| DaemonError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let result = if upgrades {
                conn.with_upgrades().await
            } else {
                conn.await
            };
            if let Err(e) = result {
                tracing::debug!("daemon connection ended: {e}");
            }
        });
        Ok(sender)
    }

    /// Sends `method path_and_query` with `headers` and `body`; returns once the response's
    /// headers arrived (its body streams on).
    pub async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Response<Incoming>, DaemonError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| DaemonError::Request(format!("bad method {method:?}")))?;
        check_path(path_and_query)?;
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, "vmrun")
            .header(
                hyper::header::USER_AGENT,
                concat!("vmrun-ui/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let req = builder
            .body(Full::new(body))
            .map_err(|e| DaemonError::Request(e.to_string()))?;
        let mut sender = self.connect(false).await?;
        Ok(sender.send_request(req).await?)
    }

    /// Starts an exec instance with a TTY and takes over the connection: `Ok(Ok(stream))`
    /// is the terminal's byte stream both ways, `Ok(Err((status, body)))` the daemon's
    /// refusal.
    pub async fn exec_hijack(
        &self,
        exec_id: &str,
    ) -> Result<Result<TokioIo<Upgraded>, (StatusCode, Bytes)>, DaemonError> {
        if exec_id.is_empty()
            || !exec_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(DaemonError::Request(format!("bad exec id {exec_id:?}")));
        }
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/exec/{exec_id}/start"))
            .header(hyper::header::HOST, "vmrun")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::CONNECTION, "Upgrade")
            .header(hyper::header::UPGRADE, "tcp")
            .body(Full::new(Bytes::from_static(
                br#"{"Detach":false,"Tty":true}"#,
            )))
            .map_err(|e| DaemonError::Request(e.to_string()))?;
        let mut sender = self.connect(true).await?;
        let response = sender.send_request(req).await?;
        let status = response.status();
        if status == StatusCode::SWITCHING_PROTOCOLS || status.is_success() {
            let upgraded = hyper::upgrade::on(response).await?;
            return Ok(Ok(TokioIo::new(upgraded)));
        }
        use http_body_util::BodyExt;
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Err((status, body)))
    }
}

/// A relayed path must be an absolute path of the API (no scheme, no authority).
fn check_path(path_and_query: &str) -> Result<(), DaemonError> {
    if !path_and_query.starts_with('/') || path_and_query.starts_with("//") {
        return Err(DaemonError::Request(format!(
            "path must start with one '/': {path_and_query:?}"
        )));
    }
    if path_and_query
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ')
    {
        return Err(DaemonError::Request(
            "control characters in the path".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_api_paths() {
        assert!(check_path("/containers/json?all=1").is_ok());
        assert!(check_path("http://evil/").is_err());
        assert!(check_path("//evil/x").is_err());
        assert!(check_path("/a b").is_err());
        assert!(check_path("/a\r\nX: y").is_err());
    }

    #[tokio::test]
    async fn a_missing_socket_is_daemon_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let client = DaemonClient::new(dir.path().join("none.sock"));
        let err = client
            .request("GET", "/_ping", &[], Bytes::new())
            .await
            .expect_err("no daemon");
        assert!(err.is_down(), "{err}");
    }
}
