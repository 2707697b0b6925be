//! The create request for a service's container: the service's options as Docker API
//! fields, the labels docker compose puts on its containers, the first network at create
//! time and the others to connect before the start.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkConnectRequest,
    NetworkingConfig, PortBinding,
};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use vmrun_compose::model::{
    MountKind, LABEL_CONFIG_HASH, LABEL_NUMBER, LABEL_ONEOFF, LABEL_SERVICE,
};
use vmrun_compose::{config_hash, Project, Service};

use crate::api::Api;
use crate::commands::fail;
use crate::error::{CliError, CliResult};
use crate::opts::run_config::parse_restart;

/// The value of `com.docker.compose.version` on what `vmrun compose` makes.
pub const COMPOSE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What differs between a service container and a `run` container.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// A `run` container (`oneoff=True`): no published ports unless `service_ports`,
    /// no restart policy.
    pub oneoff: bool,
    /// `run --service-ports`.
    pub service_ports: bool,
    /// `run COMMAND...`.
    pub command: Option<Vec<String>>,
    /// `run --entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `run -e`.
    pub environment: Vec<(String, String)>,
    /// `run -u`.
    pub user: Option<String>,
    /// `run -w`.
    pub workdir: Option<String>,
    /// `run` allocates a terminal.
    pub tty: Option<bool>,
    /// `run` keeps stdin open.
    pub stdin_open: Option<bool>,
    /// `run --rm`.
    pub auto_remove: bool,
    /// `run -l`.
    pub labels: Vec<(String, String)>,
}

/// The labels of container `number` of `service`.
pub fn container_labels(
    project: &Project,
    service: &Service,
    number: u32,
    oneoff: bool,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = service.labels.clone().into_iter().collect();
    labels.extend(project.project_labels(COMPOSE_VERSION));
    labels.insert(LABEL_SERVICE.to_owned(), service.name.clone());
    labels.insert(LABEL_NUMBER.to_owned(), number.to_string());
    labels.insert(
        LABEL_ONEOFF.to_owned(),
        if oneoff { "True" } else { "False" }.to_owned(),
    );
    labels.insert(LABEL_CONFIG_HASH.to_owned(), config_hash(service));
    labels
}

fn port_bindings(service: &Service) -> (Vec<String>, HashMap<String, Option<Vec<PortBinding>>>) {
    let mut exposed: Vec<String> = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &service.ports {
        let key = format!("{}/{}", port.target, port.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(port.host_ip.clone()),
                host_port: Some(port.published.clone()),
            });
    }
    for port in &service.expose {
        let key = if port.contains('/') {
            port.clone()
        } else {
            format!("{port}/tcp")
        };
        if !exposed.contains(&key) {
            exposed.push(key);
        }
    }
    (exposed, bindings)
}

fn healthcheck(service: &Service) -> Option<HealthConfig> {
    let h = service.healthcheck.as_ref()?;
    Some(HealthConfig {
        test: (!h.test.is_empty()).then(|| h.test.clone()),
        interval: h.interval,
        timeout: h.timeout,
        start_period: h.start_period,
        start_interval: h.start_interval,
        retries: h.retries.map(i64::from),
    })
}

/// The network endpoint of `service` on network key `key`: its aliases are the service
/// name and the ones it declares.
fn endpoint(service: &Service, key: &str) -> EndpointSettings {
    let mut aliases = vec![service.name.clone()];
    if let Some(net) = service.networks.get(key) {
        aliases.extend(net.aliases.iter().cloned());
    }
    EndpointSettings {
        aliases: Some(aliases),
        ..Default::default()
    }
}

/// The create body of container `number` of `service`, and the networks to connect
/// after the create (the engine takes one at create time).
pub fn container_body(
    project: &Project,
    service: &Service,
    number: u32,
    extra: &Overrides,
) -> CliResult<(ContainerCreateBody, Vec<NetworkConnectRequest>)> {
    let mut binds = Vec::new();
    let mut anonymous = Vec::new();
    let mut tmpfs = HashMap::new();
    for mount in &service.volumes {
        let mode = if mount.read_only { ":ro" } else { "" };
        match mount.kind {
            MountKind::Bind => binds.push(format!("{}:{}{mode}", mount.source, mount.target)),
            MountKind::Volume if mount.source.is_empty() => anonymous.push(mount.target.clone()),
            MountKind::Volume => binds.push(format!(
                "{}:{}{mode}",
                project.volume_name(&mount.source),
                mount.target
            )),
            MountKind::Tmpfs => {
                tmpfs.insert(mount.target.clone(), String::new());
            }
        }
    }
    let (exposed, mut bindings) = port_bindings(service);
    if extra.oneoff && !extra.service_ports {
        bindings.clear();
    }
    let restart_policy = match (&service.restart, extra.oneoff) {
        (Some(policy), false) => Some(parse_restart(policy).map_err(|e| {
            CliError::new(1, format!("service \"{}\": restart: {e}", service.name))
        })?),
        _ => None,
    };
    let mut networks = service.networks.keys();
    let first = networks.next();
    let network_mode = match (&service.network_mode, first) {
        (Some(mode), _) => Some(mode.clone()),
        (None, Some(key)) => Some(project.network_name(key)),
        (None, None) => None,
    };
    let host_config = HostConfig {
        binds: (!binds.is_empty()).then_some(binds),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        restart_policy,
        network_mode,
        privileged: service.privileged.then_some(true),
        init: service.init,
        readonly_rootfs: service.read_only.then_some(true),
        cap_add: (!service.cap_add.is_empty()).then(|| service.cap_add.clone()),
        cap_drop: (!service.cap_drop.is_empty()).then(|| service.cap_drop.clone()),
        dns: (!service.dns.is_empty()).then(|| service.dns.clone()),
        extra_hosts: (!service.extra_hosts.is_empty()).then(|| service.extra_hosts.clone()),
        auto_remove: extra.auto_remove.then_some(true),
        ..Default::default()
    };
    let networking_config = first.map(|key| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            project.network_name(key),
            endpoint(service, key),
        )])),
    });
    let later: Vec<NetworkConnectRequest> = networks
        .map(|key| NetworkConnectRequest {
            container: String::new(),
            endpoint_config: Some(EndpointSettings {
                network_id: Some(project.network_name(key)),
                ..endpoint(service, key)
            }),
        })
        .collect();
    let mut env: Vec<String> = service
        .environment
        .iter()
        .filter(|(k, _)| !extra.environment.iter().any(|(e, _)| e == *k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.extend(extra.environment.iter().map(|(k, v)| format!("{k}={v}")));
    let mut labels = container_labels(project, service, number, extra.oneoff);
    labels.extend(extra.labels.iter().cloned());
    let tty = extra.tty.unwrap_or(service.tty);
    let stdin_open = extra.stdin_open.unwrap_or(service.stdin_open);
    let body = ContainerCreateBody {
        image: Some(service.image.clone()),
        cmd: extra.command.clone().or_else(|| service.command.clone()),
        entrypoint: extra
            .entrypoint
            .clone()
            .or_else(|| service.entrypoint.clone()),
        env: (!env.is_empty()).then_some(env),
        labels: Some(labels),
        working_dir: extra
            .workdir
            .clone()
            .or_else(|| service.working_dir.clone()),
        user: extra.user.clone().or_else(|| service.user.clone()),
        hostname: service.hostname.clone(),
        domainname: service.domainname.clone(),
        tty: Some(tty),
        open_stdin: Some(stdin_open),
        stdin_once: Some(stdin_open && extra.oneoff),
        attach_stdin: Some(stdin_open && extra.oneoff),
        attach_stdout: Some(extra.oneoff),
        attach_stderr: Some(extra.oneoff),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        volumes: (!anonymous.is_empty()).then_some(anonymous),
        healthcheck: healthcheck(service),
        stop_signal: service.stop_signal.clone(),
        stop_timeout: service.stop_grace_period.map(|ns| ns / 1_000_000_000),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    };
    Ok((body, later))
}

/// Creates container `name` from `body`, connects it to the other networks, and returns
/// its id.
pub async fn create_container(
    api: &Api,
    name: &str,
    body: ContainerCreateBody,
    later: Vec<NetworkConnectRequest>,
) -> CliResult<String> {
    let opts = CreateContainerOptionsBuilder::new().name(name).build();
    let created = api
        .docker
        .create_container(Some(opts), body)
        .await
        .map_err(fail)?;
    for mut request in later {
        let network = request
            .endpoint_config
            .as_mut()
            .and_then(|e| e.network_id.take())
            .unwrap_or_default();
        request.container = created.id.clone();
        api.docker
            .connect_network(&network, request)
            .await
            .map_err(fail)?;
    }
    Ok(created.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmrun_compose::LoadOptions;

    fn project(text: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), text).unwrap();
        vmrun_compose::load_project(&LoadOptions {
            cwd: dir.path().to_path_buf(),
            project_name: Some("p".into()),
            ..LoadOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn a_service_becomes_docker_composes_create_request() {
        let p = project(
            "services:\n  web:\n    image: busybox\n    command: [httpd, -f]\n    ports: ['127.0.0.1:8080:80']\n    volumes: [data:/data, /srv:/srv:ro, /anon]\n    networks:\n      front: {aliases: [www]}\n      back:\n    restart: on-failure:3\n    labels: {role: server}\nnetworks: {front: {}, back: {}}\nvolumes: {data: {}}\n",
        );
        let web = &p.services["web"];
        let (body, later) = container_body(&p, web, 2, &Overrides::default()).unwrap();
        let labels = body.labels.clone().unwrap();
        assert_eq!(labels["com.docker.compose.project"], "p");
        assert_eq!(labels["com.docker.compose.service"], "web");
        assert_eq!(labels["com.docker.compose.container-number"], "2");
        assert_eq!(labels["com.docker.compose.oneoff"], "False");
        assert_eq!(labels["com.docker.compose.config-hash"], config_hash(web));
        assert_eq!(labels["role"], "server");
        let host = body.host_config.clone().unwrap();
        assert_eq!(
            host.binds.unwrap(),
            vec!["p_data:/data".to_owned(), "/srv:/srv:ro".to_owned()]
        );
        assert_eq!(body.volumes.clone().unwrap(), vec!["/anon".to_owned()]);
        let binding = &host.port_bindings.unwrap()["80/tcp"];
        assert_eq!(
            binding.as_ref().unwrap()[0].host_port.as_deref(),
            Some("8080")
        );
        assert_eq!(host.network_mode.as_deref(), Some("p_back"));
        assert_eq!(host.restart_policy.unwrap().maximum_retry_count, Some(3));
        // The first network (by key) at create time, the other connected after it.
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints["p_back"].aliases.clone().unwrap(), vec!["web"]);
        assert_eq!(later.len(), 1);
        let front = later[0].endpoint_config.clone().unwrap();
        assert_eq!(front.network_id.as_deref(), Some("p_front"));
        assert_eq!(front.aliases.unwrap(), vec!["web", "www"]);
    }

    #[test]
    fn run_containers_are_one_off_without_ports_or_restart() {
        let p = project(
            "services:\n  web:\n    image: busybox\n    ports: ['80']\n    restart: always\n",
        );
        let extra = Overrides {
            oneoff: true,
            command: Some(vec!["true".into()]),
            ..Overrides::default()
        };
        let (body, _) = container_body(&p, &p.services["web"], 1, &extra).unwrap();
        assert_eq!(body.labels.unwrap()["com.docker.compose.oneoff"], "True");
        let host = body.host_config.unwrap();
        assert!(host.port_bindings.is_none() && host.restart_policy.is_none());
        assert_eq!(body.cmd.unwrap(), vec!["true"]);
    }
}
