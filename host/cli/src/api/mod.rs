//! The connection to the engine: socket address handling, auto-start of
//! the daemon, version negotiation and the bollard client.

pub mod raw;

use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;

use crate::daemon_launch;
use crate::error::{CliError, CliResult};

/// The daemon's default address.
pub const DEFAULT_HOST: &str = "unix:///run/vmrun/docker.sock";

/// Request timeout handed to bollard. It bounds the wait for response
/// headers only; streams (logs, attach, wait) are not limited by it.
/// `stop -t N` waits N seconds before the daemon answers, so keep it long.
const REQUEST_TIMEOUT_SECS: u64 = 24 * 3600;

/// How long `_ping` may take before the daemon counts as not running.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// A negotiated connection to the engine.
#[derive(Debug, Clone)]
pub struct Api {
    /// bollard's client, version-negotiated.
    pub docker: Docker,
    /// The Unix socket path.
    pub socket: PathBuf,
    /// The host as given (`unix:///...`).
    pub host: String,
}

/// The socket path of a `-H` value (`unix:///path` or a plain absolute path).
pub fn socket_path(host: &str) -> CliResult<PathBuf> {
    if let Some(path) = host.strip_prefix("unix://") {
        if path.starts_with('/') {
            return Ok(PathBuf::from(path));
        }
    } else if host.starts_with('/') {
        return Ok(PathBuf::from(host));
    }
    Err(CliError::new(
        1,
        format!("invalid host \"{host}\": only unix:///absolute/path sockets are supported"),
    ))
}

/// Connects to the engine at `host`. When nothing answers and `autostart` is
/// set, starts the daemon in the background first (see [`daemon_launch`]).
pub async fn connect(host: &str, autostart: bool) -> CliResult<Api> {
    let socket = socket_path(host)?;
    if !raw::ping(&socket, PING_TIMEOUT).await {
        if !autostart {
            return Err(CliError::new(
                1,
                format!("cannot connect to the vmrun daemon at {host}: is it running?"),
            ));
        }
        daemon_launch::start_daemon(host, &socket).await?;
    }
    let socket_str = socket.to_string_lossy().to_string();
    let docker = Docker::connect_with_unix(
        &socket_str,
        REQUEST_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| {
        CliError::new(
            1,
            format!("cannot connect to the vmrun daemon at {host}: {e}"),
        )
    })?;
    let docker = docker.negotiate_version().await.map_err(|e| {
        CliError::new(
            1,
            format!("cannot negotiate the API version with {host}: {e}"),
        )
    })?;
    tracing::debug!(version = %docker.client_version(), "negotiated API version");
    Ok(Api {
        docker,
        socket,
        host: host.to_string(),
    })
}

impl Api {
    /// The `/vX.Y` prefix of the negotiated version, for raw requests.
    pub fn version_prefix(&self) -> String {
        format!("/v{}", self.docker.client_version())
    }

    /// `GET /vX.Y{path}` as raw JSON.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, bollard::errors::Error> {
        raw::get_json(&self.socket, &format!("{}{path}", self.version_prefix())).await
    }

    /// `POST /vX.Y{path}` with no body, the answer as JSON.
    pub async fn post_json(&self, path: &str) -> Result<serde_json::Value, bollard::errors::Error> {
        raw::post_json(&self.socket, &format!("{}{path}", self.version_prefix())).await
    }

    /// `GET /vX.Y{path}`: the JSON text as sent and parsed.
    pub async fn get_raw_json(
        &self,
        path: &str,
    ) -> Result<(String, serde_json::Value), bollard::errors::Error> {
        raw::get_raw_json(&self.socket, &format!("{}{path}", self.version_prefix())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_parsing() {
        assert_eq!(
            socket_path("unix:///tmp/x.sock").unwrap(),
            PathBuf::from("/tmp/x.sock")
        );
        assert_eq!(
            socket_path("/tmp/x.sock").unwrap(),
            PathBuf::from("/tmp/x.sock")
        );
        assert!(socket_path("tcp://127.0.0.1:2375").is_err());
        assert!(socket_path("unix://relative").is_err());
    }

    #[tokio::test]
    async fn no_daemon_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let host = format!("unix://{}/none.sock", dir.path().display());
        let err = connect(&host, false).await.unwrap_err();
        assert_eq!(err.code, 1);
        assert_eq!(
            err.message.unwrap(),
            format!("cannot connect to the vmrun daemon at {host}: is it running?")
        );
    }
}
