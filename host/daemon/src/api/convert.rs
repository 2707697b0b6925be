//! Our records as the Docker API's models.

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, DriverData, EndpointSettings,
    MountPoint, NetworkSettings, PortBinding, PortSummary, PortSummaryTypeEnum,
};
use serde_json::Value;

use crate::backend::ContainerFiles;
use crate::state::{ContainerRecord, Status};

/// Docker's zero time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Docker's human durations ("Less than a second", "5 seconds", "About a minute", ...).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        172_800..=1_209_599 => format!("{} days", s / 86_400),
        1_209_600..=5_183_999 => format!("{} weeks", s / 604_800),
        5_184_000..=63_071_999 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    }
}

fn status_text(rec: &ContainerRecord) -> String {
    let now = chrono::Utc::now();
    let since = |t: &Option<String>| {
        t.as_deref()
            .and_then(parse_time)
            .map(|t| (now - t).num_seconds())
            .unwrap_or(0)
    };
    match rec.state.status {
        Status::Created => "Created".into(),
        Status::Running if rec.state.paused => format!(
            "Up {} (Paused)",
            human_duration(since(&rec.state.started_at))
        ),
        Status::Running => {
            let up = format!("Up {}", human_duration(since(&rec.state.started_at)));
            match rec.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => format!("{up} (health: starting)"),
                Some(status @ ("healthy" | "unhealthy")) => format!("{up} ({status})"),
                _ => up,
            }
        }
        Status::Exited => format!(
            "Exited ({}) {} ago",
            rec.state.exit_code,
            human_duration(since(&rec.state.finished_at))
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

fn command_line(rec: &ContainerRecord) -> String {
    std::iter::once(rec.path.as_str())
        .chain(rec.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn endpoint_settings(rec: &ContainerRecord) -> HashMap<String, EndpointSettings> {
    let mut map = HashMap::new();
    for n in crate::engine::networks::networks_of(rec) {
        let mut aliases = n.aliases.clone();
        // dockerd adds the short id on user networks (compose 1.x looks for it).
        let user_network = ![
            vmrun_network::DEFAULT_NETWORK,
            vmrun_network::HOST_NETWORK,
            vmrun_network::NONE_NETWORK,
        ]
        .contains(&n.network.as_str());
        if user_network && !aliases.iter().any(|a| a == rec.short_id()) {
            aliases.push(rec.short_id().to_string());
        }
        let mut settings = EndpointSettings {
            aliases: Some(aliases),
            ..Default::default()
        };
        if let Some(e) = &n.endpoint {
            settings.network_id = Some(e.network_id.clone());
            settings.endpoint_id = Some(e.endpoint_id.clone());
            settings.gateway = Some(e.gateway.clone());
            settings.ip_address = Some(e.ip.clone());
            settings.ip_prefix_len = Some(i64::from(e.prefix_len));
            settings.mac_address = Some(e.mac.clone());
        }
        map.insert(n.network, settings);
    }
    map
}

fn port_summaries(rec: &ContainerRecord) -> Vec<PortSummary> {
    rec.ports
        .iter()
        .map(|p| PortSummary {
            ip: Some(p.host_ip.clone()),
            private_port: p.container_port,
            public_port: Some(p.host_port),
            typ: Some(if p.proto == "udp" {
                PortSummaryTypeEnum::UDP
            } else {
                PortSummaryTypeEnum::TCP
            }),
        })
        .collect()
}

fn mount_points(rec: &ContainerRecord) -> Vec<MountPoint> {
    rec.mounts
        .iter()
        .map(|m| MountPoint {
            typ: Some(m.kind.clone()),
            name: m.name.clone(),
            source: Some(m.source.clone()),
            destination: Some(m.destination.clone()),
            driver: m.name.as_ref().map(|_| "local".to_string()),
            mode: Some(if m.rw { "" } else { "ro" }.to_string()),
            rw: Some(m.rw),
            propagation: Some("rprivate".into()),
        })
        .collect()
}

/// `GET /containers/json` entry.
pub fn summary(rec: &ContainerRecord) -> ContainerSummary {
    let state = match rec.state.status {
        Status::Running if rec.state.paused => ContainerSummaryStateEnum::PAUSED,
        Status::Created => ContainerSummaryStateEnum::CREATED,
        Status::Running => ContainerSummaryStateEnum::RUNNING,
        Status::Exited => ContainerSummaryStateEnum::EXITED,
        Status::Removing => ContainerSummaryStateEnum::REMOVING,
        Status::Dead => ContainerSummaryStateEnum::DEAD,
    };
    ContainerSummary {
        id: Some(rec.id.clone()),
        names: Some(vec![format!("/{}", rec.name)]),
        image: Some(rec.image.clone()),
        image_id: Some(rec.image_id.clone()),
        command: Some(command_line(rec)),
        created: rec
            .created
            .parse::<chrono::DateTime<chrono::Utc>>()
            .ok()
            .map(|t| t.timestamp()),
        ports: Some(port_summaries(rec)),
        labels: Some(rec.config.labels.clone().unwrap_or_default()),
        state: Some(state),
        status: Some(status_text(rec)),
        network_settings: Some(ContainerSummaryNetworkSettings {
            networks: Some(endpoint_settings(rec)),
        }),
        mounts: Some(mount_points(rec)),
        ..Default::default()
    }
}

/// `GET /containers/{id}/json`, with the pre-1.52 top-level network fields the docker CLI's
/// templates still use (`.NetworkSettings.IPAddress`).
pub fn inspect(rec: &ContainerRecord, files: &ContainerFiles) -> Value {
    let status = match rec.state.status {
        Status::Running if rec.state.paused => ContainerStateStatusEnum::PAUSED,
        Status::Created => ContainerStateStatusEnum::CREATED,
        Status::Running => ContainerStateStatusEnum::RUNNING,
        Status::Exited => ContainerStateStatusEnum::EXITED,
        Status::Removing => ContainerStateStatusEnum::REMOVING,
        Status::Dead => ContainerStateStatusEnum::DEAD,
    };
    let mut ports: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for key in rec.config.exposed_ports() {
        ports.insert(key, None);
    }
    for p in &rec.ports {
        ports
            .entry(format!("{}/{}", p.container_port, p.proto))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(p.host_port.to_string()),
            });
    }
    let resp = ContainerInspectResponse {
        id: Some(rec.id.clone()),
        created: Some(rec.created.clone()),
        path: Some(rec.path.clone()),
        args: Some(rec.args.clone()),
        state: Some(ContainerState {
            status: Some(status),
            running: Some(rec.is_running()),
            paused: Some(rec.state.paused),
            restarting: Some(false),
            oom_killed: Some(rec.state.oom_killed),
            dead: Some(rec.state.status == Status::Dead),
            pid: Some(i64::from(rec.state.pid)),
            exit_code: Some(i64::from(rec.state.exit_code)),
            error: Some(rec.state.error.clone()),
            started_at: Some(
                rec.state
                    .started_at
                    .clone()
                    .unwrap_or_else(|| ZERO_TIME.into()),
            ),
            finished_at: Some(
                rec.state
                    .finished_at
                    .clone()
                    .unwrap_or_else(|| ZERO_TIME.into()),
            ),
            health: None,
        }),
        image: Some(rec.image_id.clone()),
        resolv_conf_path: Some(path_text(files.resolv_conf.as_deref())),
        hostname_path: Some(path_text(files.hostname.as_deref())),
        hosts_path: Some(path_text(files.hosts.as_deref())),
        log_path: Some(files.log.display().to_string()),
        name: Some(format!("/{}", rec.name)),
        restart_count: Some(i64::from(rec.restart_count)),
        driver: Some(
            files
                .graph_driver
                .as_ref()
                .map_or("overlay2", |g| g.name.as_str())
                .into(),
        ),
        graph_driver: files.graph_driver.as_ref().map(|g| DriverData {
            name: g.name.clone(),
            data: g.data.clone().into_iter().collect(),
        }),
        platform: Some("linux".into()),
        mounts: Some(mount_points(rec)),
        network_settings: Some(NetworkSettings {
            sandbox_key: rec
                .endpoint
                .as_ref()
                .map(|_| path_text(files.sandbox.as_deref())),
            ports: Some(ports),
            networks: Some(endpoint_settings(rec)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut v = serde_json::to_value(&resp).unwrap_or(Value::Null);
    // The saved documents are docker's JSON already (with fields docker's model may not
    // know, such as a `vm` isolation): given back as they are.
    if let Some(obj) = v.as_object_mut() {
        obj.insert("Config".into(), json_of(&rec.config));
        obj.insert("HostConfig".into(), json_of(&rec.host_config));
    }
    if let Some(h) = &rec.health {
        v["State"]["Health"] = serde_json::json!({
            "Status": h.status,
            "FailingStreak": h.failing_streak,
            "Log": h.log.iter().map(|l| serde_json::json!({
                "Start": l.start,
                "End": l.end,
                "ExitCode": l.exit_code,
                "Output": l.output,
            })).collect::<Vec<_>>(),
        });
    }
    if let Some(ns) = v.get_mut("NetworkSettings").and_then(Value::as_object_mut) {
        let e = rec.endpoint.as_ref();
        let s = |f: &dyn Fn(&crate::state::EndpointState) -> String| {
            Value::String(e.map(f).unwrap_or_default())
        };
        ns.insert("IPAddress".into(), s(&|e| e.ip.clone()));
        ns.insert("Gateway".into(), s(&|e| e.gateway.clone()));
        ns.insert("MacAddress".into(), s(&|e| e.mac.clone()));
        ns.insert(
            "IPPrefixLen".into(),
            Value::from(e.map(|e| e.prefix_len).unwrap_or(0)),
        );
        ns.insert("Bridge".into(), Value::String(String::new()));
    }
    v
}

fn path_text(p: Option<&std::path::Path>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

fn json_of<T: serde::Serialize>(doc: &T) -> Value {
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(4000), "About an hour");
        assert_eq!(human_duration(3 * 86_400), "3 days");
    }
}
