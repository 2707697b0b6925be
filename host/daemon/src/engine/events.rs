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

/// How many past events `GET /events?since=` can replay.
const HISTORY: usize = 1024;

/// Fan-out of events to every subscriber, with a short history for `since`.
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    history: std::sync::Mutex<std::collections::VecDeque<Event>>,
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
            history: std::sync::Mutex::new(std::collections::VecDeque::with_capacity(HISTORY)),
        }
    }

    /// Receive events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Past events at or after `since_nanos`, and a receiver for what follows (taken under
    /// the same lock, so nothing falls between the two).
    pub fn replay(&self, since_nanos: i64) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let past = history
            .iter()
            .filter(|e| e.time_nano >= since_nanos)
            .cloned()
            .collect();
        (past, self.tx.subscribe())
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
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(event.clone());
        // No subscribers is fine.
        let _ = self.tx.send(event);
    }
}
