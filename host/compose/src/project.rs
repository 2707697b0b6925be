//! Loading a project: the files found or given, the environment (`.env` under the
//! process environment), each file checked, the files merged, `extends` resolved, every
//! service normalized, profiles applied, and the whole checked (references to services,
//! networks and volumes; no `depends_on` cycle) before anything is created.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use crate::error::{ComposeError, Location, Result};
use crate::interpolate::Environment;
use crate::merge::{merge_files, resolve_extends};
use crate::model::{MountKind, Project, Resource, Service};
use crate::normalize::{clean_path, normalize_service, Context};
use crate::raw::{scalar_text, RawResource, RawService};
use crate::source::{describe, find_default_files, read_dotenv, read_source};

/// What the command line says about the project.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f` files; empty: search from `cwd`.
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory`.
    pub project_dir: Option<PathBuf>,
    /// `--env-file` (default `<project dir>/.env`).
    pub env_file: Option<PathBuf>,
    /// `--profile` values.
    pub profiles: Vec<String>,
    /// Services named on the command line: enabled whatever their profiles.
    pub services: Vec<String>,
    /// The current directory.
    pub cwd: PathBuf,
    /// The process environment.
    pub process_env: Environment,
}

/// A project name as docker compose normalizes it: lowercase, only `a-z0-9_-`.
pub fn normalize_project_name(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect::<String>()
        .trim_start_matches(['_', '-'])
        .to_owned()
}

/// Loads and checks a project.
pub fn load_project(opts: &LoadOptions) -> Result<Project> {
    let files: Vec<PathBuf> = if opts.files.is_empty() {
        find_default_files(&opts.cwd)?
    } else {
        opts.files
            .iter()
            .map(|f| clean_path(&opts.cwd.join(f)))
            .collect()
    };
    let first_dir = files
        .first()
        .and_then(|f| f.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| opts.cwd.clone());
    let working_dir = opts
        .project_dir
        .as_ref()
        .map(|d| clean_path(&opts.cwd.join(d)))
        .unwrap_or(first_dir);
    let dotenv = opts
        .env_file
        .as_ref()
        .map(|f| opts.cwd.join(f))
        .unwrap_or_else(|| working_dir.join(".env"));
    let mut env = read_dotenv(&dotenv)?;
    env.extend(opts.process_env.clone());
    let sources = files
        .iter()
        .map(|f| read_source(f, &env))
        .collect::<Result<Vec<_>>>()?;
    let label = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    let mut merged = merge_files(&sources);
    let mut services = match merged.remove("services") {
        Some(Value::Mapping(m)) => m,
        _ => Mapping::new(),
    };
    resolve_extends(&mut services, &working_dir, &env, &label)?;
    let declared_name = merged.get("name").and_then(scalar_text);
    let raw_name = opts
        .project_name
        .clone()
        .or_else(|| env.get("COMPOSE_PROJECT_NAME").cloned())
        .or(declared_name)
        .unwrap_or_else(|| {
            working_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let name = normalize_project_name(&raw_name);
    if name.is_empty() {
        return Err(ComposeError::Invalid {
            at: Location::new(&label, "", "name"),
            message: format!("{raw_name:?} is not a valid project name"),
        });
    }
    let ctx = Context {
        project: &name,
        base_dir: &working_dir,
        env: &env,
        file: &label,
    };
    let mut all = BTreeMap::new();
    for (key, body) in services {
        let service_name = scalar_text(&key).unwrap_or_default();
        let section = format!("services.{service_name}");
        let raw: RawService = serde_norway::from_value(strip_extensions(body))
            .map_err(|e| describe(&label, &section, "", &e.to_string()))?;
        all.insert(
            service_name.clone(),
            normalize_service(&service_name, raw, &ctx)?,
        );
    }
    for wanted in &opts.services {
        if !all.contains_key(wanted) {
            return Err(ComposeError::NoSuchService(wanted.clone()));
        }
    }
    let mut active: BTreeSet<String> = opts.profiles.iter().cloned().collect();
    if let Some(list) = env.get("COMPOSE_PROFILES") {
        active.extend(list.split(',').filter(|p| !p.is_empty()).map(str::to_owned));
    }
    let (services, disabled): (BTreeMap<_, _>, BTreeMap<_, _>) =
        all.into_iter().partition(|(n, s): &(String, Service)| {
            s.profiles.is_empty()
                || s.profiles.iter().any(|p| active.contains(p) || p == "*")
                || opts.services.contains(n)
        });
    let networks = resources(&merged, "networks", &name, &label)?;
    let volumes = resources(&merged, "volumes", &name, &label)?;
    let mut project = Project {
        name,
        working_dir,
        config_files: files,
        services,
        networks,
        volumes,
        disabled: disabled.into_keys().collect(),
    };
    check_references(&mut project, &label)?;
    crate::order::start_order(&project, &label)?;
    Ok(project)
}

fn strip_extensions(body: Value) -> Value {
    match body {
        Value::Mapping(map) => Value::Mapping(
            map.into_iter()
                .filter(|(k, _)| !k.as_str().is_some_and(|k| k.starts_with("x-")))
                .collect(),
        ),
        other => other,
    }
}

fn resources(
    merged: &Mapping,
    kind: &str,
    project: &str,
    label: &str,
) -> Result<BTreeMap<String, Resource>> {
    let mut out = BTreeMap::new();
    let Some(Value::Mapping(section)) = merged.get(kind) else {
        return Ok(out);
    };
    for (key, body) in section {
        let key = scalar_text(key).unwrap_or_default();
        let raw: RawResource = match body {
            Value::Null => RawResource::default(),
            other => serde_norway::from_value(other.clone())
                .map_err(|e| describe(label, &format!("{kind}.{key}"), "", &e.to_string()))?,
        };
        let external = raw.external.unwrap_or(false);
        let name = match (&raw.name, external) {
            (Some(name), _) => name.clone(),
            (None, true) => key.clone(),
            (None, false) => format!("{project}_{key}"),
        };
        let labels = raw
            .labels
            .unwrap_or_default()
            .0
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
        out.insert(
            key,
            Resource {
                name,
                external,
                driver: raw.driver,
                driver_opts: raw
                    .driver_opts
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
                labels,
            },
        );
    }
    Ok(out)
}

/// Every `depends_on`, network and named volume a service uses must exist; the
/// implicit `default` network is added when used.
fn check_references(project: &mut Project, label: &str) -> Result<()> {
    let mut needs_default = false;
    for service in project.services.values() {
        let at = |key: &str| Location::new(label, format!("services.{}", service.name), key);
        for (dep, how) in &service.depends_on {
            if project.services.contains_key(dep) {
                continue;
            }
            let why = if project.disabled.contains(dep) {
                "which is not enabled by the active profiles"
            } else {
                "which is not defined"
            };
            if how.required {
                return Err(ComposeError::Reference {
                    at: at("depends_on"),
                    message: format!("depends on service {dep:?}, {why}"),
                });
            }
        }
        for network in service.networks.keys() {
            if network == "default" {
                needs_default = true;
            } else if !project.networks.contains_key(network) {
                return Err(ComposeError::Reference {
                    at: at("networks"),
                    message: format!(
                        "network {network:?} is not declared under the top-level networks"
                    ),
                });
            }
        }
        for mount in &service.volumes {
            if mount.kind == MountKind::Volume
                && !mount.source.is_empty()
                && !project.volumes.contains_key(&mount.source)
            {
                return Err(ComposeError::Reference {
                    at: at("volumes"),
                    message: format!(
                        "named volume {:?} is not declared under the top-level volumes",
                        mount.source
                    ),
                });
            }
        }
    }
    if needs_default && !project.networks.contains_key("default") {
        let name = format!("{}_default", project.name);
        project.networks.insert(
            "default".to_owned(),
            Resource {
                name,
                external: false,
                driver: None,
                driver_opts: BTreeMap::new(),
                labels: BTreeMap::new(),
            },
        );
    }
    Ok(())
}
