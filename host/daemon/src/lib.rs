//! The vmrun daemon: serves the Docker Engine API on a Unix socket and runs containers
//! through [`backend::ContainerBackend`]s.
//!
//! Layers, top to bottom:
//! - [`api`]: HTTP routes of the Docker Engine API, thin translations to the engine. The
//!   only layer that knows HTTP: it maps the engine's [`engine::EngineError`] to docker's
//!   status codes and error JSON ([`error`]).
//! - [`engine`]: the container lifecycle (create, start, stop, exec, wait, remove),
//!   events, logs. It holds the backends as trait objects ([`backend::Backends`]) and
//!   picks one per container by its isolation (`--isolation`, `--runtime`).
//! - [`state`]: the daemon's own, versioned container records (`container.json`), with
//!   migrations from earlier versions.
//! - [`backend`]: where processes actually run, told about a container by a
//!   backend-neutral [`backend::ContainerSpec`]: the native backend (the runtime library
//!   through one `vmrun-shim` per container) and the VM backend (one microVM per
//!   container, driven through the guest agent), both private to that module. Tests
//!   drive the engine with a fake one.
//! - [`setup`]: start-up: opens the stores and the network, registers the backends.

#![recursion_limit = "256"]

pub mod api;
pub mod backend;
pub mod builder;
pub mod config;
pub mod engine;
pub mod error;
pub mod setup;
pub mod state;
pub mod vm;

pub use config::DaemonConfig;

use std::sync::Arc;

use anyhow::Context;

/// Run the daemon until SIGINT or SIGTERM.
pub async fn run(config: DaemonConfig) -> anyhow::Result<()> {
    let engine = Arc::new(setup::open_engine(config.clone()).await?);
    engine.recover().await;
    let listener = api::listen(&config.socket).context("opening the API socket")?;
    tracing::info!("vmrund listening on unix://{}", config.socket.display());
    let router = api::router(engine.clone());
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        tracing::info!("shutting down; containers keep running under their shims");
        let _ = stop_tx.send(true);
    });
    let mut graceful_rx = stop_rx.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = graceful_rx.wait_for(|s| *s).await;
    });
    // Streams (attach, logs -f, events) may stay open forever: give them a moment, then go.
    let grace = async move {
        let _ = stop_rx.wait_for(|s| *s).await;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    };
    tokio::select! {
        r = server => r.context("serving the API")?,
        () = grace => {},
    }
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}
