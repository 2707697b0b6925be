//! The agent's cgroup figures as containerd's metrics type, and containerd's resource
//! updates as the agent's. Stats go out as `io.containerd.cgroups.v2.Metrics` (what the
//! runc shim sends on a cgroup v2 host, and what the guest has); updates come in as
//! `ctr task update` and the CRI send them: an OCI `LinuxResources` object in JSON
//! (typeurl's encoding of a non-protobuf type).

use containerd_shim::protos::cgroups_v2::metrics::{
    CPUStat, MemoryEvents, MemoryStat, Metrics, PidsStat,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField, MessageFull};
use vmrun_agent_protocol::ContainerStats;

/// What containerd's cgroup v2 reader reports for "no limit".
const UNLIMITED: u64 = u64::MAX;

/// `stats` as containerd's v2 metrics.
pub fn metrics(stats: &ContainerStats) -> Metrics {
    let pids = PidsStat {
        current: stats.pids_current,
        limit: stats.pids_limit.unwrap_or(0),
        ..Default::default()
    };
    let cpu = CPUStat {
        usage_usec: stats.cpu_usage_ns / 1000,
        user_usec: stats.cpu_user_ns / 1000,
        system_usec: stats.cpu_system_ns / 1000,
        ..Default::default()
    };
    let memory = MemoryStat {
        usage: stats.memory_usage,
        max_usage: stats.memory_max_usage,
        usage_limit: stats.memory_limit.unwrap_or(UNLIMITED),
        file: stats.memory_cache,
        ..Default::default()
    };
    let events = MemoryEvents {
        oom_kill: stats.oom_kill_count,
        ..Default::default()
    };
    Metrics {
        pids: MessageField::some(pids),
        cpu: MessageField::some(cpu),
        memory: MessageField::some(memory),
        memory_events: MessageField::some(events),
        ..Default::default()
    }
}

/// `metrics` packed as containerd expects (type URL = the message's full name).
pub fn to_any(metrics: &Metrics) -> anyhow::Result<Any> {
    Ok(Any {
        type_url: Metrics::descriptor().full_name().to_string(),
        value: metrics.write_to_bytes()?,
        ..Default::default()
    })
}

/// The OCI `linux.resources` object of an update request.
pub fn resources(any: &Any) -> anyhow::Result<serde_json::Value> {
    if any.value.is_empty() {
        return Err(anyhow::anyhow!("the update carries no resources"));
    }
    let value: serde_json::Value = serde_json::from_slice(&any.value).map_err(|e| {
        anyhow::anyhow!(
            "the resources ({}) are not an OCI LinuxResources in JSON: {e}",
            any.type_url
        )
    })?;
    if !value.is_object() {
        return Err(anyhow::anyhow!("the resources are not a JSON object"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_become_v2_metrics() {
        let stats = ContainerStats {
            memory_usage: 4096,
            memory_max_usage: 8192,
            memory_limit: Some(32 << 20),
            cpu_usage_ns: 5_000_000,
            pids_current: 2,
            oom_kill_count: 1,
            ..Default::default()
        };
        let m = metrics(&stats);
        assert_eq!(m.memory.usage, 4096);
        assert_eq!(m.memory.usage_limit, 32 << 20);
        assert_eq!(m.cpu.usage_usec, 5000);
        assert_eq!(m.pids.current, 2);
        assert_eq!(m.memory_events.oom_kill, 1);
        let unlimited = metrics(&ContainerStats::default());
        assert_eq!(unlimited.memory.usage_limit, u64::MAX);
        let any = to_any(&m).unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
        assert_eq!(Metrics::parse_from_bytes(&any.value).unwrap(), m);
    }

    #[test]
    fn update_resources_are_json() {
        let any = Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
            value: br#"{"memory":{"limit":33554432},"cpu":{"quota":50000}}"#.to_vec(),
            ..Default::default()
        };
        assert_eq!(resources(&any).unwrap()["memory"]["limit"], 33554432);
        let bad = Any {
            value: b"\x0a\x01".to_vec(),
            ..Default::default()
        };
        assert!(resources(&bad).is_err());
        assert!(resources(&Any::default()).is_err());
    }
}
