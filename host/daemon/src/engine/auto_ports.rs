//! Ports a backend forwards by itself while a container runs (automatic forwarding of
//! containers in VMs): kept in the container's record next to its published ports, so
//! `docker port`, `ps` and inspect show them, for as long as that run of the container
//! lasts.

use std::sync::Arc;

use tokio::sync::watch;

use super::spec;
use super::Engine;
use crate::backend::PublishedPort;
use crate::state::{PublishedPortState, Status};

impl Engine {
    /// Follows `auto` for the run of container `id` whose init is `pid`: each change
    /// rewrites the record's ports as `published` plus the forwarded ones. Ends when the
    /// backend stops forwarding or that run is over (a later run has its own follower).
    pub(super) fn follow_auto_ports(
        self: &Arc<Self>,
        id: String,
        pid: i32,
        published: Vec<PublishedPortState>,
        mut auto: watch::Receiver<Vec<PublishedPort>>,
    ) {
        let engine = self.clone();
        tokio::spawn(async move {
            while auto.changed().await.is_ok() {
                let forwarded: Vec<PublishedPortState> = auto
                    .borrow_and_update()
                    .iter()
                    .map(spec::port_state)
                    .collect();
                let same_run = |r: &crate::state::ContainerRecord| {
                    r.state.status == Status::Running && r.state.pid == pid
                };
                let updated = engine.store.update_if(&id, same_run, |r| {
                    r.ports = published.iter().chain(&forwarded).cloned().collect();
                });
                match updated {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::debug!("recording forwarded ports of {id}: {e}");
                        break;
                    }
                }
            }
        });
    }
}
