//! The backends of one daemon, by isolation kind: the engine picks one per container.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ContainerBackend;

/// How a container is isolated from the host, which decides its backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Namespaces and cgroups on this host's kernel.
    #[default]
    Native,
    /// Inside a microVM of its own, with its own kernel (Kata's model).
    Vm,
    /// Inside the daemon's one shared VM (Docker Desktop's model).
    #[serde(rename = "shared-vm")]
    SharedVm,
}

impl Isolation {
    /// Every kind.
    pub const ALL: [Isolation; 3] = [Isolation::Native, Isolation::Vm, Isolation::SharedVm];

    /// Lower-case name, as saved and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Native => "native",
            Isolation::Vm => "vm",
            Isolation::SharedVm => "shared-vm",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// No backend serves an isolation kind.
#[derive(Debug, Clone, thiserror::Error)]
#[error("isolation {isolation} is not available on this daemon: {reason}")]
pub struct Unavailable {
    /// The kind asked for.
    pub isolation: Isolation,
    /// Why there is none.
    pub reason: String,
}

/// The backends of a daemon. Adding one is one line: `.with(Isolation::Vm, backend)`.
#[derive(Clone, Default)]
pub struct Backends {
    backends: HashMap<Isolation, Arc<dyn ContainerBackend>>,
    reasons: HashMap<Isolation, String>,
}

impl Backends {
    /// No backends.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serve `isolation` with `backend`.
    pub fn with(mut self, isolation: Isolation, backend: Arc<dyn ContainerBackend>) -> Self {
        self.reasons.remove(&isolation);
        self.backends.insert(isolation, backend);
        self
    }

    /// Say why `isolation` has no backend (shown to clients that ask for it).
    pub fn without(mut self, isolation: Isolation, reason: impl Into<String>) -> Self {
        if !self.backends.contains_key(&isolation) {
            self.reasons.insert(isolation, reason.into());
        }
        self
    }

    /// The backend of `isolation`.
    pub fn get(&self, isolation: Isolation) -> Result<&Arc<dyn ContainerBackend>, Unavailable> {
        self.backends.get(&isolation).ok_or_else(|| Unavailable {
            isolation,
            reason: self
                .reasons
                .get(&isolation)
                .cloned()
                .unwrap_or_else(|| "no backend for it is registered".into()),
        })
    }

    /// The kinds served, in [`Isolation::ALL`] order.
    pub fn available(&self) -> Vec<Isolation> {
        Isolation::ALL
            .into_iter()
            .filter(|i| self.backends.contains_key(i))
            .collect()
    }
}
