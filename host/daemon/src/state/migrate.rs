//! Reading records of earlier versions.
//!
//! Version 0 is what vmrund wrote before records had a version: no `version` field,
//! docker's `Config` and `HostConfig` as the `bollard-stubs` crate serialized them (which
//! is docker's JSON), the shim's pid as `state.shim_pid`, and no isolation (every
//! container ran natively). Version 1 adds `version` and `isolation` and names the
//! monitor's pid `state.monitor_pid`.

use serde::Deserialize;
use serde_json::Value;

use super::docker::{DockerConfig, DockerHostConfig};
use super::record::{
    ContainerRecord, EndpointState, MountState, PublishedPortState, RunState, Status,
};
use crate::backend::Isolation;

/// A version-0 record. Endpoint, port and mount states have not changed since; copy them
/// here when a later version changes them.
#[derive(Deserialize)]
struct RecordV0 {
    id: String,
    name: String,
    created: String,
    image: String,
    image_id: String,
    layers: Vec<std::path::PathBuf>,
    path: String,
    args: Vec<String>,
    config: DockerConfig,
    host_config: DockerHostConfig,
    network_mode: String,
    aliases: Vec<String>,
    state: RunStateV0,
    endpoint: Option<EndpointState>,
    ports: Vec<PublishedPortState>,
    mounts: Vec<MountState>,
    restart_count: u32,
}

#[derive(Deserialize)]
struct RunStateV0 {
    status: Status,
    pid: i32,
    shim_pid: i32,
    exit_code: i32,
    started_at: Option<String>,
    finished_at: Option<String>,
    oom_killed: bool,
    error: String,
    stopped_by_user: bool,
}

/// Version 0 to the current record.
pub fn from_v0(value: Value) -> Result<ContainerRecord, serde_json::Error> {
    let v0: RecordV0 = serde_json::from_value(value)?;
    Ok(ContainerRecord {
        id: v0.id,
        name: v0.name,
        created: v0.created,
        image: v0.image,
        image_id: v0.image_id,
        isolation: Isolation::Native,
        layers: v0.layers,
        path: v0.path,
        args: v0.args,
        config: v0.config,
        host_config: v0.host_config,
        network_mode: v0.network_mode,
        aliases: v0.aliases,
        state: RunState {
            status: v0.state.status,
            pid: v0.state.pid,
            monitor_pid: v0.state.shim_pid,
            exit_code: v0.state.exit_code,
            started_at: v0.state.started_at,
            finished_at: v0.state.finished_at,
            oom_killed: v0.state.oom_killed,
            error: v0.state.error,
            stopped_by_user: v0.state.stopped_by_user,
            paused: false,
        },
        endpoint: v0.endpoint,
        ports: v0.ports,
        mounts: v0.mounts,
        restart_count: v0.restart_count,
        extra_networks: Vec::new(),
        health: None,
    })
}
