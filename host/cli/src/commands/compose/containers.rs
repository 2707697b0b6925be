//! A project's containers as the engine has them, found by docker compose's labels, so
//! that containers made by docker compose (v2's `<project>-<service>-<n>` or 1.29's
//! `<project>_<service>_<n>`) and by `vmrun compose` are the same project.

use std::collections::HashMap;

use bollard::models::ContainerSummary;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use vmrun_compose::model::{
    LABEL_CONFIG_HASH, LABEL_NUMBER, LABEL_ONEOFF, LABEL_PROJECT, LABEL_SERVICE,
};

use crate::api::Api;
use crate::commands::fail;
use crate::error::CliResult;

/// Which containers of a project to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Service containers (`oneoff=False`), running or not.
    Services,
    /// Running service containers only.
    Running,
    /// Everything with the project label, `run` containers included.
    Everything,
}

/// One container of a project.
#[derive(Debug, Clone)]
pub struct ProjectContainer {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// `com.docker.compose.service`.
    pub service: String,
    /// `com.docker.compose.container-number` (0 when missing).
    pub number: u32,
    /// `com.docker.compose.config-hash`.
    pub config_hash: String,
    /// `running`, `exited`, ...
    pub state: String,
    /// `Up 3 seconds`, ...
    pub status: String,
    /// The image as created.
    pub image: String,
    /// The command, as the engine shows it.
    pub command: String,
    /// Published ports, `127.0.0.1:8080->80/tcp`.
    pub ports: Vec<String>,
    /// All labels.
    pub labels: HashMap<String, String>,
}

impl ProjectContainer {
    fn from_summary(c: &ContainerSummary) -> Self {
        let labels = c.labels.clone().unwrap_or_default();
        let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
        let ports = c
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
                match p.public_port {
                    Some(public) => format!(
                        "{}:{public}->{}/{proto}",
                        p.ip.clone().unwrap_or_default(),
                        p.private_port
                    ),
                    None => format!("{}/{proto}", p.private_port),
                }
            })
            .collect();
        ProjectContainer {
            id: c.id.clone().unwrap_or_default(),
            name: c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default(),
            service: label(LABEL_SERVICE),
            number: label(LABEL_NUMBER).parse().unwrap_or(0),
            config_hash: label(LABEL_CONFIG_HASH),
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            status: c.status.clone().unwrap_or_default(),
            image: c.image.clone().unwrap_or_default(),
            command: c.command.clone().unwrap_or_default(),
            ports,
            labels,
        }
    }

    /// Whether it runs.
    pub fn running(&self) -> bool {
        self.state == "running" || self.state == "restarting"
    }
}

/// The project's containers, sorted by service and number; only those of `services`
/// when it is not empty.
pub async fn list(
    api: &Api,
    project: &str,
    which: Which,
    services: &[String],
) -> CliResult<Vec<ProjectContainer>> {
    let mut labels = vec![format!("{LABEL_PROJECT}={project}")];
    if which != Which::Everything {
        labels.push(format!("{LABEL_ONEOFF}=False"));
    }
    let filters = HashMap::from([("label".to_owned(), labels)]);
    let opts = ListContainersOptionsBuilder::new()
        .all(which != Which::Running)
        .filters(&filters)
        .build();
    let summaries = api.docker.list_containers(Some(opts)).await.map_err(fail)?;
    let mut out: Vec<ProjectContainer> = summaries
        .iter()
        .map(ProjectContainer::from_summary)
        .filter(|c| services.is_empty() || services.contains(&c.service))
        .collect();
    out.sort_by(|a, b| (&a.service, a.number, &a.name).cmp(&(&b.service, b.number, &b.name)));
    Ok(out)
}

/// Stops (with `timeout` seconds of grace, the engine's default when `None`) and
/// removes a container; says so on stderr.
pub async fn stop_and_remove(
    api: &Api,
    container: &ProjectContainer,
    timeout: Option<i32>,
) -> CliResult<()> {
    if container.running() {
        stop(api, container, timeout).await?;
    }
    let opts = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(false)
        .build();
    api.docker
        .remove_container(&container.id, Some(opts))
        .await
        .map_err(fail)?;
    progress("Container", &container.name, "Removed");
    Ok(())
}

/// Stops a container; says so on stderr.
pub async fn stop(api: &Api, container: &ProjectContainer, timeout: Option<i32>) -> CliResult<()> {
    let mut opts = StopContainerOptionsBuilder::new();
    if let Some(t) = timeout {
        opts = opts.t(t);
    }
    api.docker
        .stop_container(&container.id, Some(opts.build()))
        .await
        .map_err(fail)?;
    progress("Container", &container.name, "Stopped");
    Ok(())
}

/// One progress line on stderr, as docker compose v2 prints them
/// (` Container p-web-1  Started`).
pub fn progress(kind: &str, name: &str, what: &str) {
    eprintln!(" {kind} {name}  {what}");
}
