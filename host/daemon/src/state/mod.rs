//! Persistent container state: one JSON record per container under
//! `<data-root>/containers/<id>/container.json`, and the in-memory index over them.

mod record;
mod store;

pub use record::{
    ContainerRecord, EndpointState, MountState, PublishedPortState, RunState, Status,
};
pub use store::{ContainerStore, StoreError};
