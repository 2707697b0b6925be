//! Persistent container state: one JSON record per container under
//! `<data-root>/containers/<id>/container.json`, and the in-memory index over them.
//!
//! The record is the daemon's own, versioned type ([`file::RECORD_VERSION`]): docker's
//! `Config` and `HostConfig` are kept in docker's JSON shape ([`docker`]), never as a
//! client crate's types, so upgrading a crate cannot change the file format. Records of
//! earlier versions are migrated when read ([`migrate`]); a record of a later version
//! stops the daemon rather than being skipped or overwritten.

pub mod docker;
pub mod file;
mod migrate;
pub mod off_worker;
mod record;
mod store;

pub use docker::{DockerConfig, DockerHostConfig, DockerPortBinding};
pub use record::{
    ContainerRecord, EndpointState, HealthLogEntry, HealthState, MountState, NetworkAttachment,
    PublishedPortState, RunState, Status,
};
pub use store::{ContainerStore, StoreError, RECORD_FILE};
