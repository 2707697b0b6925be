//! The daemon's event stream (`GET /events`, and the engine's own waiters).

use std::collections::HashMap;

use serde::Serialize;
use tokio::sync::broadcast;

/// One event, shaped like docker's.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `container`, `image`, `network`, `volume`.
    #[serde(rename = "Type")]
    pub typ: String,
    /// `create`, `start`, `die`, `destroy`, ...
    #[serde(rename = "Action")]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local`.
    pub scope: String,
    /// Seconds since the epoch.
    pub time: i64,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    // Pre-1.22 fields the docker CLI still reads for containers.
    /// Status (= action).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Id (containers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Image (containers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// The object of an event.
#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    /// Id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Extra facts: `name`, `image`, `exitCode`, `signal`.
    #[serde(rename = "Attributes")]
    pub attributes: HashMap<String, String>,
}

impl Event {
    /// The value of an attribute.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.actor.attributes.get(key).map(String::as_str)
    }
}

/// Fan-out of events to every subscriber.
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> Self {
        EventBus {
            tx: broadcast::channel(1024).0,
        }
    }

    /// Receive events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Publish an event.
    pub fn emit(&self, typ: &str, action: &str, id: &str, attributes: &[(&str, String)]) {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let attributes: HashMap<String, String> = attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let container = typ == "container";
        let event = Event {
            typ: typ.into(),
            action: action.into(),
            scope: "local".into(),
            time: now.timestamp(),
            time_nano: nanos,
            status: container.then(|| action.to_string()),
            id: container.then(|| id.to_string()),
            from: if container {
                attributes.get("image").cloned()
            } else {
                None
            },
            actor: Actor {
                id: id.into(),
                attributes,
            },
        };
        // No subscribers is fine.
        let _ = self.tx.send(event);
    }
}
