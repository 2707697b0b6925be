//! `pause`, `unpause`, `rename`, `port`, `diff`, `export` and `update`: small
//! container commands, printing what docker prints.

use std::io::Write;

use bollard::models::{ChangeType, ContainerUpdateBody};
use bollard::query_parameters::RenameContainerOptionsBuilder;
use futures::StreamExt;

use super::{fail, for_each_name, print_text};
use crate::api::Api;
use crate::error::{daemon_message, CliError, CliResult};
use crate::opts::run_config::parse_restart;
use crate::opts::size::{parse_nano_cpus, parse_ram_in_bytes};

/// Arguments of `pause` and `unpause`.
#[derive(Debug, Clone, clap::Args)]
pub struct PauseArgs {
    /// The containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Arguments of `rename`.
#[derive(Debug, Clone, clap::Args)]
pub struct RenameArgs {
    /// The container
    pub container: String,
    /// Its new name
    pub new_name: String,
}

/// Arguments of `port`.
#[derive(Debug, Clone, clap::Args)]
pub struct PortArgs {
    /// The container
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

/// Arguments of `diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The container
    pub container: String,
}

/// Arguments of `export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// The container
    pub container: String,
}

/// Arguments of `update`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long)]
    pub cpu_period: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    /// The containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `vmrun pause`.
pub async fn pause(api: &Api, args: &PauseArgs) -> CliResult<i32> {
    for_each_name(&args.containers, true, |name| {
        let docker = api.docker.clone();
        async move { docker.pause_container(&name).await }
    })
    .await
}

/// `vmrun unpause`.
pub async fn unpause(api: &Api, args: &PauseArgs) -> CliResult<i32> {
    for_each_name(&args.containers, true, |name| {
        let docker = api.docker.clone();
        async move { docker.unpause_container(&name).await }
    })
    .await
}

/// `vmrun rename`.
pub async fn rename(api: &Api, args: &RenameArgs) -> CliResult<i32> {
    let new_name = args.new_name.trim();
    if new_name.is_empty() {
        return Err(CliError::new(
            1,
            "Error: Neither old nor new names may be empty",
        ));
    }
    let opts = RenameContainerOptionsBuilder::new().name(new_name).build();
    api.docker
        .rename_container(&args.container, opts)
        .await
        .map_err(|e| {
            CliError::new(
                1,
                format!("Error: failed to rename container: {}", daemon_message(&e)),
            )
        })?;
    Ok(0)
}

/// One published port: `(port, proto, host_ip, host_port)`.
type Binding = (u16, String, String, String);

/// The container's published ports from its inspect, sorted by port and protocol.
fn bindings(inspect: &serde_json::Value) -> Vec<Binding> {
    let mut out = Vec::new();
    let Some(ports) = inspect["NetworkSettings"]["Ports"].as_object() else {
        return out;
    };
    for (key, list) in ports {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        for b in list.as_array().into_iter().flatten() {
            out.push((
                port,
                proto.to_string(),
                b["HostIp"].as_str().unwrap_or_default().to_string(),
                b["HostPort"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out.sort();
    out
}

/// `HOST_IP:PORT`, with an IPv6 address in brackets.
fn host_address(ip: &str, port: &str) -> String {
    let ip = if ip.is_empty() { "0.0.0.0" } else { ip };
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Renders `port` as docker does.
pub fn render_port(
    inspect: &serde_json::Value,
    name: &str,
    want: Option<&str>,
) -> Result<String, String> {
    let all = bindings(inspect);
    let mut text = String::new();
    match want {
        None => {
            for (port, proto, ip, host_port) in &all {
                text.push_str(&format!(
                    "{port}/{proto} -> {}\n",
                    host_address(ip, host_port)
                ));
            }
        }
        Some(spec) => {
            let (port, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
            let port: u16 = port
                .parse()
                .map_err(|_| format!("Error: invalid port ({port}): invalid syntax"))?;
            let matching: Vec<&Binding> =
                all.iter().filter(|b| b.0 == port && b.1 == proto).collect();
            if matching.is_empty() {
                return Err(format!(
                    "Error: No public port '{spec}' published for {name}"
                ));
            }
            for (_, _, ip, host_port) in matching {
                text.push_str(&host_address(ip, host_port));
                text.push('\n');
            }
        }
    }
    Ok(text)
}

/// `vmrun port`.
pub async fn port(api: &Api, args: &PortArgs) -> CliResult<i32> {
    let inspect = api
        .get_json(&format!("/containers/{}/json", args.container))
        .await
        .map_err(fail)?;
    let text = render_port(&inspect, &args.container, args.port.as_deref())
        .map_err(|m| CliError::new(1, m))?;
    print_text(&text);
    Ok(0)
}

/// `vmrun diff`.
pub async fn diff(api: &Api, args: &DiffArgs) -> CliResult<i32> {
    let changes = api
        .docker
        .container_changes(&args.container)
        .await
        .map_err(fail)?
        .unwrap_or_default();
    let mut text = String::new();
    for c in changes {
        let kind = match c.kind {
            ChangeType::_0 => 'C',
            ChangeType::_1 => 'A',
            ChangeType::_2 => 'D',
        };
        text.push_str(&format!("{kind} {}\n", c.path));
    }
    print_text(&text);
    Ok(0)
}

/// `vmrun export`.
pub async fn export(api: &Api, args: &ExportArgs) -> CliResult<i32> {
    use std::io::IsTerminal;
    let mut out: Box<dyn Write> =
        match &args.output {
            Some(path) => Box::new(std::fs::File::create(path).map_err(|e| {
                CliError::new(1, format!("failed to export container: {path}: {e}"))
            })?),
            None if std::io::stdout().is_terminal() => {
                return Err(CliError::new(
                    1,
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                ))
            }
            None => Box::new(std::io::stdout().lock()),
        };
    let mut stream = api.docker.export_container(&args.container);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(fail)?;
        out.write_all(&chunk)
            .map_err(|e| CliError::new(1, format!("writing the export: {e}")))?;
    }
    out.flush()
        .map_err(|e| CliError::new(1, format!("writing the export: {e}")))?;
    Ok(0)
}

/// The update request of `args` (checked before any API call).
pub fn update_body(args: &UpdateArgs) -> CliResult<ContainerUpdateBody> {
    let bytes = |flag: &str, v: &Option<String>| -> CliResult<Option<i64>> {
        match v.as_deref() {
            None => Ok(None),
            Some("-1") => Ok(Some(-1)),
            Some(s) => parse_ram_in_bytes(s).map(Some).map_err(|e| {
                CliError::new(
                    1,
                    format!("invalid argument \"{s}\" for \"{flag}\" flag: {e}"),
                )
            }),
        }
    };
    let nano_cpus = match &args.cpus {
        None => None,
        Some(c) => Some(parse_nano_cpus(c).map_err(|e| {
            CliError::new(
                1,
                format!("invalid argument \"{c}\" for \"--cpus\" flag: {e}"),
            )
        })?),
    };
    let restart_policy = match &args.restart {
        None => None,
        Some(r) => Some(parse_restart(r).map_err(|e| CliError::new(1, e))?),
    };
    let body = ContainerUpdateBody {
        memory: bytes("-m, --memory", &args.memory)?,
        memory_swap: bytes("--memory-swap", &args.memory_swap)?,
        cpu_shares: args.cpu_shares,
        cpu_quota: args.cpu_quota,
        cpu_period: args.cpu_period,
        nano_cpus,
        cpuset_cpus: args.cpuset_cpus.clone(),
        cpuset_mems: args.cpuset_mems.clone(),
        pids_limit: args.pids_limit,
        restart_policy,
        ..Default::default()
    };
    if body == ContainerUpdateBody::default() {
        return Err(CliError::new(
            1,
            "you must provide one or more flags when using this command",
        ));
    }
    Ok(body)
}

/// `vmrun update`.
pub async fn update(api: &Api, args: &UpdateArgs) -> CliResult<i32> {
    let body = update_body(args)?;
    for_each_name(&args.containers, true, |name| {
        let docker = api.docker.clone();
        let body = body.clone();
        async move { docker.update_container(&name, body).await }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_render_like_docker() {
        let inspect = serde_json::json!({"NetworkSettings": {"Ports": {
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
            "443/tcp": null
        }}});
        assert_eq!(
            render_port(&inspect, "web", None).unwrap(),
            "53/udp -> 127.0.0.1:5353\n80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080\n"
        );
        assert_eq!(
            render_port(&inspect, "web", Some("80")).unwrap(),
            "0.0.0.0:8080\n[::]:8080\n"
        );
        assert_eq!(
            render_port(&inspect, "web", Some("443")).unwrap_err(),
            "Error: No public port '443' published for web"
        );
    }

    #[test]
    fn update_needs_a_flag() {
        let args = UpdateArgs {
            memory: Some("64m".into()),
            memory_swap: None,
            cpu_shares: None,
            cpu_quota: None,
            cpu_period: None,
            cpus: None,
            cpuset_cpus: None,
            cpuset_mems: None,
            pids_limit: None,
            restart: None,
            containers: vec!["c".into()],
        };
        assert_eq!(update_body(&args).unwrap().memory, Some(64 << 20));
        let none = UpdateArgs {
            memory: None,
            ..args
        };
        assert!(update_body(&none).is_err());
    }
}
