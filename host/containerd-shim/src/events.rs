//! Task events published back to containerd (`/tasks/create`, `/tasks/exit`, ...).

use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::publisher::RemotePublisher;

/// containerd's event service, for one namespace.
pub struct Events {
    publisher: RemotePublisher,
    namespace: String,
}

impl Events {
    /// Events of `namespace` through `publisher`.
    pub fn new(publisher: RemotePublisher, namespace: String) -> Self {
        Events {
            publisher,
            namespace,
        }
    }

    /// Publishes `event` on `topic`; a failure is logged (containerd retries nothing
    /// on our behalf, and the task goes on).
    pub async fn publish(&self, topic: &str, event: Box<dyn MessageDyn>) {
        if let Err(e) = self
            .publisher
            .publish(Context::default(), topic, &self.namespace, event)
            .await
        {
            log::warn!("publishing {topic}: {e}");
        }
    }
}

/// `t` as a protobuf timestamp.
pub fn timestamp(t: std::time::SystemTime) -> Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    ts.nanos = i32::try_from(d.subsec_nanos()).unwrap_or(0);
    ts
}
