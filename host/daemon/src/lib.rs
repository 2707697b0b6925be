//! The vmrun daemon: serves the Docker Engine API on a Unix socket and runs containers
//! through a [`backend::ContainerBackend`].
//!
//! Layers, top to bottom:
//! - [`api`]: HTTP routes of the Docker Engine API, thin translations to the engine.
//! - [`engine`]: the container lifecycle (create, start, stop, exec, wait, remove), state
//!   persisted by [`state`], events, logs.
//! - [`backend`]: where processes actually run. Today [`backend::native`] (the runtime
//!   library through one `vmrun-shim` per container); a VM backend talks to the guest agent.

#![recursion_limit = "256"]

pub mod api;
pub mod backend;
pub mod config;
pub mod engine;
pub mod error;
pub mod state;

pub use config::DaemonConfig;

use std::sync::Arc;

use anyhow::Context;

/// Run the daemon until SIGINT or SIGTERM.
pub async fn run(config: DaemonConfig) -> anyhow::Result<()> {
    let engine = Arc::new(engine::Engine::open(config.clone()).await?);
    engine.recover().await;
    let listener = api::listen(&config.socket).context("opening the API socket")?;
    tracing::info!("vmrund listening on unix://{}", config.socket.display());
    let router = api::router(engine.clone());
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        tracing::info!("shutting down; containers keep running under their shims");
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the API")?;
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}
