//! vmrun-ui-server: the browser adapter of vmrun's desktop dashboard (`vmrun ui
//! --browser`). It serves the built web front end (`ui/dist`) on 127.0.0.1 and relays
//! the front end's calls to the daemon's Docker-compatible API on its Unix socket, and
//! nothing else: plain requests under `/api/docker/...` go through as they are, streams
//! (events, logs, stats, pull progress, exec terminals) are multiplexed over one
//! WebSocket at `/ws` (see [`ws`] for the frames). Every call must carry the token made
//! at launch (header `X-Vmrun-Token`, or `?token=` on the WebSocket) and name the server
//! by a loopback host, so no other local page can drive the daemon through it. The
//! optional "start daemon" action is a callback of the embedding binary (the CLI starts
//! `vmrund` exactly as its other commands do). [`daemon`] and [`relay`] are shared with
//! the Tauri shell, which offers the same operations as Tauri commands; so is [`tray`],
//! the model of its tray menu.

pub mod assets;
pub mod auth;
pub mod daemon;
pub mod relay;
mod routes;
pub mod tray;
pub mod ws;

use std::future::IntoFuture;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;

pub use daemon::{DaemonClient, DaemonError};

/// Starts the daemon when the dashboard's "start daemon" action asks; the error is shown.
pub type DaemonStarter = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum UiServerError {
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The front end is not built where it was looked for.
    #[error(
        "the built front end is missing: no {0} (build it with `npm ci && npm run build` in ui/)"
    )]
    Assets(PathBuf),
    /// Serving failed.
    #[error("the UI server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// How to run the adapter.
#[derive(Clone)]
pub struct UiConfig {
    /// The daemon's socket.
    pub socket: PathBuf,
    /// The built front end (a directory with `index.html`).
    pub assets: PathBuf,
    /// The port on 127.0.0.1 (0: any free one).
    pub port: u16,
    /// The token (a fresh random one when `None`).
    pub token: Option<String>,
    /// The "start daemon" action, if the embedding binary offers one.
    pub start_daemon: Option<DaemonStarter>,
}

/// What every handler shares.
pub(crate) struct Shared {
    pub(crate) client: DaemonClient,
    pub(crate) assets: PathBuf,
    pub(crate) token: String,
    pub(crate) port: u16,
    pub(crate) start_daemon: Option<DaemonStarter>,
}

/// A bound adapter; [`UiServer::serve`] runs it.
pub struct UiServer {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl UiServer {
    /// Binds 127.0.0.1:`port` and checks that the front end is built.
    pub async fn bind(config: UiConfig) -> Result<UiServer, UiServerError> {
        let index = config.assets.join("index.html");
        if !index.is_file() {
            return Err(UiServerError::Assets(index));
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| UiServerError::Bind { addr, source })?;
        let port = listener
            .local_addr()
            .map_err(|source| UiServerError::Bind { addr, source })?
            .port();
        let shared = Arc::new(Shared {
            client: DaemonClient::new(config.socket),
            assets: config.assets,
            token: config.token.unwrap_or_else(auth::new_token),
            port,
            start_daemon: config.start_daemon,
        });
        Ok(UiServer { listener, shared })
    }

    /// The bound address (always on 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.shared.port))
    }

    /// This launch's token.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The URL to open: the dashboard with the token, which the page then keeps.
    pub fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/?token={}",
            self.shared.port, self.shared.token
        )
    }

    /// Serves until `shutdown` completes; open connections (streams of a page still
    /// open) are dropped then, not waited for.
    pub async fn serve_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), UiServerError> {
        let app = routes::router(self.shared);
        let serve = axum::serve(self.listener, app).into_future();
        tokio::select! {
            result = serve => result.map_err(UiServerError::Serve),
            () = shutdown => Ok(()),
        }
    }
}
