//! The project's networks, volumes and images: made when missing (networks and volumes
//! with docker compose's labels), refused when external and absent, built from a
//! service's `build` section or pulled.

use std::collections::HashMap;

use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{ListNetworksOptionsBuilder, ListVolumesOptionsBuilder};
use clap::Parser;
use vmrun_compose::model::{LABEL_NETWORK, LABEL_PROJECT, LABEL_VERSION, LABEL_VOLUME};
use vmrun_compose::{Project, Service};

use super::containers::progress;
use super::create::COMPOSE_VERSION;
use crate::api::Api;
use crate::commands::{build, fail, pull};
use crate::error::{status_code, CliError, CliResult};

fn labels(
    project: &Project,
    kind: &str,
    key: &str,
    user: &std::collections::BTreeMap<String, String>,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = user.clone().into_iter().collect();
    labels.insert(kind.to_owned(), key.to_owned());
    labels.insert(LABEL_PROJECT.to_owned(), project.name.clone());
    labels.insert(LABEL_VERSION.to_owned(), COMPOSE_VERSION.to_owned());
    labels
}

/// Creates the project's networks that do not exist yet.
pub async fn ensure_networks(api: &Api, project: &Project) -> CliResult<()> {
    for (key, network) in &project.networks {
        match api.docker.inspect_network(&network.name, None).await {
            Ok(_) => continue,
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(fail(e)),
        }
        if network.external {
            return Err(CliError::new(
                1,
                format!(
                    "network {} declared as external, but could not be found",
                    network.name
                ),
            ));
        }
        let request = NetworkCreateRequest {
            name: network.name.clone(),
            driver: Some(
                network
                    .driver
                    .clone()
                    .unwrap_or_else(|| "bridge".to_owned()),
            ),
            options: (!network.driver_opts.is_empty())
                .then(|| network.driver_opts.clone().into_iter().collect()),
            labels: Some(labels(project, LABEL_NETWORK, key, &network.labels)),
            ..Default::default()
        };
        api.docker.create_network(request).await.map_err(fail)?;
        progress("Network", &network.name, "Created");
    }
    Ok(())
}

/// Creates the project's volumes that do not exist yet.
pub async fn ensure_volumes(api: &Api, project: &Project) -> CliResult<()> {
    for (key, volume) in &project.volumes {
        match api.docker.inspect_volume(&volume.name).await {
            Ok(_) => continue,
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(fail(e)),
        }
        if volume.external {
            return Err(CliError::new(
                1,
                format!("external volume \"{}\" not found", volume.name),
            ));
        }
        let request = VolumeCreateRequest {
            name: Some(volume.name.clone()),
            driver: volume.driver.clone(),
            driver_opts: (!volume.driver_opts.is_empty())
                .then(|| volume.driver_opts.clone().into_iter().collect()),
            labels: Some(labels(project, LABEL_VOLUME, key, &volume.labels)),
            ..Default::default()
        };
        api.docker.create_volume(request).await.map_err(fail)?;
        progress("Volume", &volume.name, "Created");
    }
    Ok(())
}

/// Whether the engine has `image`.
pub async fn has_image(api: &Api, image: &str) -> CliResult<bool> {
    match api.docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(e) if status_code(&e) == Some(404) => Ok(false),
        Err(e) => Err(fail(e)),
    }
}

/// Builds `service`'s image from its `build` section, tagged with its image name,
/// through the same path as `vmrun build`.
pub async fn build_service(api: &Api, service: &Service) -> CliResult<()> {
    let Some(spec) = &service.build else {
        return Ok(());
    };
    #[derive(Parser)]
    struct BuildCommand {
        #[command(flatten)]
        args: build::BuildArgs,
    }
    let mut argv = vec![
        "build".to_owned(),
        "-t".to_owned(),
        service.image.clone(),
        "-f".to_owned(),
        spec.context.join(&spec.dockerfile).display().to_string(),
    ];
    for (k, v) in &spec.args {
        argv.push("--build-arg".into());
        argv.push(format!("{k}={v}"));
    }
    for (k, v) in &spec.labels {
        argv.push("--label".into());
        argv.push(format!("{k}={v}"));
    }
    if let Some(target) = &spec.target {
        argv.push("--target".into());
        argv.push(target.clone());
    }
    argv.push(spec.context.display().to_string());
    let parsed = BuildCommand::try_parse_from(argv)
        .map_err(|e| CliError::new(1, format!("service \"{}\": build: {e}", service.name)))?;
    eprintln!(" Service {}  Building", service.name);
    build::build(api, &parsed.args)
        .await
        .map_err(|e| CliError {
            message: e
                .message
                .map(|m| format!("service \"{}\" failed to build: {m}", service.name)),
            ..e
        })?;
    progress("Service", &service.name, "Built");
    Ok(())
}

/// Pulls `service`'s image.
pub async fn pull_service(api: &Api, service: &Service) -> CliResult<()> {
    progress("Image", &service.image, "Pulling");
    pull::pull_image(api, &service.image, None, pull::Output::Stderr)
        .await
        .map_err(|m| CliError::new(1, format!("service \"{}\": {m}", service.name)))?;
    progress("Image", &service.image, "Pulled");
    Ok(())
}

/// Makes sure every service in `names` has its image: built when it has a `build`
/// section and `build` is set or the image is missing, pulled when missing otherwise
/// (or always, with `pull_policy: always`).
pub async fn ensure_images(
    api: &Api,
    project: &Project,
    names: &[String],
    build: bool,
) -> CliResult<()> {
    for name in names {
        let Some(service) = project.services.get(name) else {
            continue;
        };
        let present = has_image(api, &service.image).await?;
        if service.build.is_some() && (build || !present) {
            build_service(api, service).await?;
        } else if !present || service.pull_policy.as_deref() == Some("always") {
            pull_service(api, service).await?;
        }
    }
    Ok(())
}

/// The names of the networks and volumes labelled as the project's.
pub async fn labelled(api: &Api, project: &str) -> CliResult<(Vec<String>, Vec<String>)> {
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{LABEL_PROJECT}={project}")],
    )]);
    // The filter is checked here too: what the engine returns is not trusted to be
    // filtered (vmrund lists every network whatever the label filter).
    let ours = |labels: Option<&HashMap<String, String>>| {
        labels
            .and_then(|l| l.get(LABEL_PROJECT))
            .map(String::as_str)
            == Some(project)
    };
    let networks = api
        .docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(fail)?
        .into_iter()
        .filter(|n| ours(n.labels.as_ref()))
        .filter_map(|n| n.name)
        .collect();
    let volumes = api
        .docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(fail)?
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter(|v| ours(Some(&v.labels)))
        .map(|v| v.name)
        .collect();
    Ok((networks, volumes))
}
