//! `POST /containers/create`: validate a request, merge the image's defaults, store it.

use bollard_stubs::models::{ContainerConfig, ContainerCreateBody, HostConfig};

use super::{names, requested_isolation, Engine, EngineError};
use crate::state::{ContainerRecord, DockerConfig, DockerHostConfig, MountState, RunState};

/// A create request as the API received it.
pub struct CreateRequest {
    /// `?name=`.
    pub name: Option<String>,
    /// The JSON body.
    pub body: ContainerCreateBody,
    /// `HostConfig.Isolation` as sent (the body's typed field knows only docker's names).
    pub isolation: Option<String>,
}

/// A docker document (`Config`, `HostConfig`) as the record keeps it.
fn saved<T: serde::Serialize, U: serde::de::DeserializeOwned>(doc: &T) -> Result<U, EngineError> {
    serde_json::to_value(doc)
        .and_then(serde_json::from_value)
        .map_err(|e| EngineError::internal(format!("saving the container config: {e}")))
}

impl Engine {
    /// Create a container; returns its id and warnings.
    pub async fn create_container(
        &self,
        req: CreateRequest,
    ) -> Result<(String, Vec<String>), EngineError> {
        let body = req.body;
        let image_ref = body
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| EngineError::bad_request("config.Image: no image specified"))?;
        let image = self.images.resolve(&image_ref).map_err(|e| match e {
            vmrun_images::ImageError::NotFound(_) => {
                EngineError::not_found(format!("No such image: {image_ref}"))
            }
            other => EngineError::from(other),
        })?;
        let name = match req.name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(&n).to_string();
                names::validate(&n).map_err(EngineError::BadRequest)?;
                n
            }
            None => self.unused_name(),
        };
        let host_config = body.host_config.clone().unwrap_or_default();
        validate_resources(&host_config)?;
        super::restart::validate(&host_config)?;
        super::extra_hosts(host_config.extra_hosts.as_deref().unwrap_or_default())?;
        let isolation = requested_isolation(
            req.isolation.as_deref(),
            host_config.runtime.as_deref(),
            self.default_isolation(),
        )?;
        self.backends.get(isolation)?;
        let mut config: ContainerConfig = serde_json::to_value(&body)
            .and_then(serde_json::from_value)
            .map_err(|e| EngineError::bad_request(format!("invalid container config: {e}")))?;
        let image_config = image.config.config().clone().unwrap_or_default();

        // Command: a user entrypoint replaces the image's entrypoint and cmd.
        let user_entrypoint = config.entrypoint.clone().filter(|e| !e.is_empty());
        let (entrypoint, cmd) = match user_entrypoint {
            Some(ep) => (ep, config.cmd.clone().unwrap_or_default()),
            None => (
                image_config.entrypoint().clone().unwrap_or_default(),
                config
                    .cmd
                    .clone()
                    .filter(|c| !c.is_empty())
                    .or_else(|| image_config.cmd().clone())
                    .unwrap_or_default(),
            ),
        };
        let mut argv: Vec<String> = entrypoint.into_iter().chain(cmd.clone()).collect();
        if argv.is_empty() {
            return Err(EngineError::bad_request("No command specified"));
        }
        let path = argv.remove(0);
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            config.cmd = Some(cmd);
        }

        // Environment: the image's, overridden key by key by the user's.
        let mut env: Vec<String> = image_config.env().clone().unwrap_or_default();
        for kv in config.env.iter().flatten() {
            if !kv.contains('=') || kv.starts_with('=') {
                return Err(EngineError::bad_request(format!(
                    "invalid environment variable: {kv}"
                )));
            }
            let key = kv.split('=').next().unwrap_or(kv);
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        config.env = Some(env);
        if config.working_dir.as_deref().is_none_or(str::is_empty) {
            config.working_dir = image_config.working_dir().clone();
        }
        if let Some(dir) = config.working_dir.as_deref().filter(|d| !d.is_empty()) {
            if !dir.starts_with('/') {
                return Err(EngineError::bad_request(format!(
                    "the working directory '{dir}' is invalid, it needs to be an absolute path"
                )));
            }
        }
        if config.user.as_deref().is_none_or(str::is_empty) {
            config.user = image_config.user().clone();
        }
        if config.labels.is_none() {
            config.labels = image_config.labels().clone();
        }
        // The image's EXPOSE joins the container's (`-P` publishes them all).
        let mut exposed = config.exposed_ports.clone().unwrap_or_default();
        for port in image_config.exposed_ports().clone().unwrap_or_default() {
            if !exposed.contains(&port) {
                exposed.push(port);
            }
        }
        for key in &exposed {
            super::parse_port_key(key)?;
        }
        if !exposed.is_empty() {
            config.exposed_ports = Some(exposed);
        }
        config.image = Some(image_ref.clone());

        let (network_mode, aliases) = self.network_choice(&body, &host_config)?;
        let extra_networks = self.extra_networks(&body, &network_mode)?;
        let mut mounts = self.resolve_mounts(&host_config)?;
        let wanted: Vec<String> = image_config
            .volumes()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .chain(body.volumes.clone().unwrap_or_default())
            .collect();
        mounts.extend(self.anonymous_volumes(&wanted, &mounts)?);
        if isolation != crate::backend::Isolation::SharedVm {
            // The shared VM keeps volumes on its own disk, filled there at the container's
            // first start (`MountSpec::fill_from_image`); elsewhere they are these dirs.
            self.fill_new_volumes(&image.layer_dirs, &mounts);
        }
        let mounts: Vec<MountState> = mounts
            .into_iter()
            .map(|(m, copy)| MountState { fill: copy, ..m })
            .collect();
        for key in host_config.port_bindings.iter().flat_map(|b| b.keys()) {
            super::parse_port_key(key)?;
        }

        let id = super::new_id();
        let mut host_config = host_config;
        fill_defaults(&mut config, &mut host_config, &id, &network_mode);
        let mut config: DockerConfig = saved(&config)?;
        self.merge_healthcheck(&mut config, &image.id)?;
        let mut host_config: DockerHostConfig = saved(&host_config)?;
        let asked_nothing = matches!(req.isolation.as_deref(), None | Some("" | "default"));
        if asked_nothing && isolation != crate::backend::Isolation::Native {
            // Where it runs shows in `inspect` even when the daemon's mode chose it.
            host_config.isolation = Some(isolation.as_str().to_string());
        } else if req.isolation.is_some() {
            host_config.isolation = req.isolation;
        }
        let rec = ContainerRecord {
            id,
            name,
            created: vmrun_shim::now_rfc3339(),
            image: image_ref,
            image_id: image.id.clone(),
            isolation,
            layers: image.layer_dirs.clone(),
            path,
            args: argv,
            config,
            host_config,
            network_mode,
            aliases,
            state: RunState::default(),
            endpoint: None,
            ports: Vec::new(),
            mounts,
            restart_count: 0,
            extra_networks,
            health: None,
        };
        let id = rec.id.clone();
        let image_name = rec.image.clone();
        let cname = rec.name.clone();
        // The container holds the image's layers: removing the image (`rmi -f`) keeps them.
        self.images
            .hold(&id, &rec.image_id)
            .map_err(|e| EngineError::not_found(format!("No such image: {image_name}: {e}")))?;
        if let Err(e) = self.store.insert(rec) {
            let _ = self.images.release(&id);
            return Err(e.into());
        }
        self.events.emit(
            "container",
            "create",
            &id,
            &[("name", cname), ("image", image_name)],
        );
        Ok((id, Vec::new()))
    }

    /// The request's `Healthcheck` checked and merged over the image's `HEALTHCHECK`.
    fn merge_healthcheck(
        &self,
        config: &mut DockerConfig,
        image_id: &str,
    ) -> Result<(), EngineError> {
        super::health::validate(config.rest.get("Healthcheck"))?;
        let from_image = self
            .images
            .raw_config(image_id)
            .ok()
            .and_then(|raw| raw["config"].get("Healthcheck").cloned());
        match super::health::merge(config.rest.get("Healthcheck"), from_image.as_ref()) {
            Some(h) => config.rest.insert("Healthcheck".into(), h),
            None => config.rest.remove("Healthcheck"),
        };
        Ok(())
    }

    fn unused_name(&self) -> String {
        loop {
            let n = names::random_name();
            if self.store.resolve(&n).is_err() {
                return n;
            }
        }
    }

    fn network_choice(
        &self,
        body: &ContainerCreateBody,
        hc: &HostConfig,
    ) -> Result<(String, Vec<String>), EngineError> {
        let mode = hc.network_mode.clone().unwrap_or_default();
        let mode = match mode.as_str() {
            "" | "default" => vmrun_network::DEFAULT_NETWORK.to_string(),
            m if m.starts_with("container:") => {
                return Err(EngineError::bad_request(
                    "network mode container:<name> is not supported by vmrun yet",
                ))
            }
            m => m.to_string(),
        };
        if mode != vmrun_network::HOST_NETWORK && mode != vmrun_network::NONE_NETWORK {
            let known = match &self.network {
                Some(network) => network.inspect(&mode).is_ok(),
                None => mode == vmrun_network::DEFAULT_NETWORK,
            };
            if !known {
                return Err(EngineError::not_found(format!("network {mode} not found")));
            }
        }
        let aliases = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref())
            .and_then(|e| e.get(&mode))
            .and_then(|e| e.aliases.clone())
            .unwrap_or_default();
        Ok((mode, aliases))
    }

    /// A volume of its own (random name, labelled anonymous, filled from the image) for
    /// each of `paths` (the image's `VOLUME`s, `-v /path`) no mount in `mounts` covers.
    fn anonymous_volumes(
        &self,
        paths: &[String],
        mounts: &[(MountState, bool)],
    ) -> Result<Vec<(MountState, bool)>, EngineError> {
        let mut out: Vec<(MountState, bool)> = Vec::new();
        for path in paths {
            let dest = path.trim_end_matches('/');
            let dest = if dest.is_empty() { "/" } else { dest };
            let taken = mounts
                .iter()
                .chain(out.iter())
                .any(|(m, _)| m.destination.trim_end_matches('/') == dest.trim_end_matches('/'));
            if taken || !dest.starts_with('/') {
                continue;
            }
            let name = super::new_id();
            let labels = [(super::volumes::ANONYMOUS_LABEL.to_string(), String::new())];
            let v = self
                .volumes
                .create_with_labels(&name, &labels.into_iter().collect())?;
            self.events.emit("volume", "create", &name, &[]);
            out.push((
                MountState {
                    kind: "volume".into(),
                    name: Some(name),
                    source: v.mountpoint.display().to_string(),
                    destination: dest.to_string(),
                    rw: true,
                    fill: true,
                },
                true,
            ));
        }
        Ok(out)
    }

    /// Fills each empty volume of `mounts` that asks for it with the image's content at
    /// its mount point (`vmrun_containerfs::fill`); a failure is logged, the container
    /// made anyway.
    fn fill_new_volumes(&self, layers: &[std::path::PathBuf], mounts: &[(MountState, bool)]) {
        let scratch = self.config.data_root.join("tmp");
        for (m, copy) in mounts {
            if !copy || m.kind != "volume" {
                continue;
            }
            let source = std::path::Path::new(&m.source);
            let filled = crate::state::off_worker::off_worker(|| {
                vmrun_containerfs::fill::fill_from_image(layers, &m.destination, source, &scratch)
            });
            if let Err(e) = filled {
                tracing::warn!(volume = ?m.name, "{e}");
            }
        }
    }

    fn resolve_mounts(&self, hc: &HostConfig) -> Result<Vec<(MountState, bool)>, EngineError> {
        let mut out = Vec::new();
        for bind in hc.binds.iter().flatten() {
            out.push(self.parse_bind(bind)?);
        }
        for m in hc.mounts.iter().flatten() {
            let target = m.target.clone().unwrap_or_default();
            let source = m.source.clone().unwrap_or_default();
            let ro = m.read_only.unwrap_or(false);
            let typ = m.typ.map(|t| t.to_string()).unwrap_or_default();
            let spec = format!("{source}:{target}{}", if ro { ":ro" } else { "" });
            match typ.as_str() {
                "bind" | "volume" => out.push(self.parse_bind(&spec)?),
                other => {
                    return Err(EngineError::bad_request(format!(
                        "mount type {other} is not supported by vmrun yet"
                    )))
                }
            }
        }
        Ok(out)
    }

    /// One `-v` / mount: the mount, and whether an empty volume is filled from the image
    /// (a volume without `nocopy`).
    fn parse_bind(&self, spec: &str) -> Result<(MountState, bool), EngineError> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (source, dest, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, o] => (*s, *d, *o),
            _ => {
                return Err(EngineError::bad_request(format!(
                    "invalid volume specification: '{spec}'"
                )))
            }
        };
        if !dest.starts_with('/') {
            return Err(EngineError::bad_request(format!(
                "invalid volume specification: '{spec}': invalid mount config for type \"bind\": invalid mount path: '{dest}' mount path must be absolute"
            )));
        }
        let mut rw = true;
        let mut copy = true;
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => rw = false,
                "rw" => rw = true,
                "nocopy" => copy = false,
                "z" | "Z" | "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave"
                | "consistent" | "cached" | "delegated" => {}
                other => {
                    return Err(EngineError::bad_request(format!(
                        "invalid volume specification: '{spec}': invalid mode: {other}"
                    )))
                }
            }
        }
        if source.starts_with('/') {
            if !std::path::Path::new(source).exists() {
                return Err(EngineError::bad_request(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                )));
            }
            Ok((
                MountState {
                    kind: "bind".into(),
                    name: None,
                    source: source.to_string(),
                    destination: dest.to_string(),
                    rw,
                    fill: false,
                },
                false,
            ))
        } else {
            let v = self.volumes.create(source)?;
            self.events.emit("volume", "create", source, &[]);
            Ok((
                MountState {
                    kind: "volume".into(),
                    name: Some(source.to_string()),
                    source: v.mountpoint.display().to_string(),
                    destination: dest.to_string(),
                    rw,
                    fill: false,
                },
                copy,
            ))
        }
    }
}

/// What dockerd shows in `inspect` for fields a client left out.
fn fill_defaults(config: &mut ContainerConfig, hc: &mut HostConfig, id: &str, network_mode: &str) {
    let text = |v: &mut Option<String>, d: &str| {
        if v.is_none() {
            *v = Some(d.to_string());
        }
    };
    let flag = |v: &mut Option<bool>| {
        if v.is_none() {
            *v = Some(false);
        }
    };
    text(&mut config.hostname, &id[..12.min(id.len())]);
    text(&mut config.domainname, "");
    text(&mut config.user, "");
    text(&mut config.working_dir, "");
    for f in [
        &mut config.attach_stdin,
        &mut config.attach_stdout,
        &mut config.attach_stderr,
        &mut config.tty,
        &mut config.open_stdin,
        &mut config.stdin_once,
    ] {
        flag(f);
    }
    if config.labels.is_none() {
        config.labels = Some(Default::default());
    }
    hc.network_mode = Some(network_mode.to_string());
    for f in [
        &mut hc.auto_remove,
        &mut hc.privileged,
        &mut hc.readonly_rootfs,
    ] {
        flag(f);
    }
    for v in [
        &mut hc.memory,
        &mut hc.nano_cpus,
        &mut hc.cpu_shares,
        &mut hc.memory_swap,
    ] {
        if v.is_none() {
            *v = Some(0);
        }
    }
    if hc.binds.is_none() {
        hc.binds = Some(Vec::new());
    }
    if hc.restart_policy.is_none() {
        hc.restart_policy = Some(bollard_stubs::models::RestartPolicy {
            name: Some(bollard_stubs::models::RestartPolicyNameEnum::NO),
            maximum_retry_count: Some(0),
        });
    }
    if hc.log_config.is_none() {
        hc.log_config = Some(bollard_stubs::models::HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(Default::default()),
        });
    }
}

fn validate_resources(hc: &HostConfig) -> Result<(), EngineError> {
    // A bad --log-opt is refused at create, as dockerd does.
    if let Some(lc) = &hc.log_config {
        super::log_opts::rotation(
            lc.typ.as_deref(),
            lc.config
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
    }
    if let Some(m) = hc.memory {
        if m < 0 {
            return Err(EngineError::bad_request(
                "invalid memory limit: must be positive",
            ));
        }
        if m > 0 && m < 6 * 1024 * 1024 {
            return Err(EngineError::bad_request(
                "Minimum memory limit allowed is 6MB",
            ));
        }
    }
    if let Some(n) = hc.nano_cpus {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as i64;
        if n < 0 || n > cpus * 1_000_000_000 {
            return Err(EngineError::bad_request(format!(
                "range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
    }
    Ok(())
}
