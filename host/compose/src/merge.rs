//! Merging: later `-f` files over earlier ones, and a service over the one it `extends`,
//! following the Compose Specification's rules: mappings merge key by key (`environment`
//! and `labels` in either form), list-valued options such as `ports` and `volumes` are
//! appended, and everything else (`command`, `entrypoint`, `image`, ...) is replaced.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::{Mapping, Value};

use crate::error::{ComposeError, Location, Result};
use crate::interpolate::Environment;
use crate::raw::{scalar_text, ExtendsLong};
use crate::source::{read_source, SourceFile};

/// Options whose lists are appended (duplicates dropped) rather than replaced.
const APPENDED: [&str; 10] = [
    "ports",
    "expose",
    "volumes",
    "dns",
    "cap_add",
    "cap_drop",
    "env_file",
    "extra_hosts",
    "profiles",
    "links",
];

/// Options written as a mapping or as a `KEY=VALUE` list, merged as mappings.
const KEY_VALUE: [&str; 2] = ["environment", "labels"];

/// Options merged as mappings whose list form names keys only.
const NAMED: [&str; 2] = ["networks", "depends_on"];

/// Options that are mappings merged recursively.
const NESTED: [&str; 3] = ["build", "healthcheck", "deploy"];

/// `environment`/`labels` as a mapping.
fn key_value_mapping(value: &Value) -> Value {
    match value {
        Value::Sequence(items) => {
            let mut map = Mapping::new();
            for item in items {
                let text = scalar_text(item).unwrap_or_default();
                match text.split_once('=') {
                    Some((k, v)) => map.insert(k.into(), v.into()),
                    None => map.insert(text.into(), Value::Null),
                };
            }
            Value::Mapping(map)
        }
        other => other.clone(),
    }
}

/// `networks`/`depends_on` list form as a mapping.
fn named_mapping(key: &str, value: &Value) -> Value {
    match value {
        Value::Sequence(items) => {
            let mut map = Mapping::new();
            for item in items {
                let entry = if key == "depends_on" {
                    let mut long = Mapping::new();
                    long.insert("condition".into(), "service_started".into());
                    Value::Mapping(long)
                } else {
                    Value::Null
                };
                map.insert(item.clone(), entry);
            }
            Value::Mapping(map)
        }
        other => other.clone(),
    }
}

/// `build: ./dir` as `{context: ./dir}`.
fn build_mapping(value: &Value) -> Value {
    match value {
        Value::String(context) => {
            let mut map = Mapping::new();
            map.insert("context".into(), context.as_str().into());
            Value::Mapping(map)
        }
        other => other.clone(),
    }
}

fn merge_mappings(base: &mut Mapping, over: &Mapping) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => merge_mappings(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Merges service `over` onto service `base`.
pub fn merge_service(base: &mut Mapping, over: &Mapping) {
    for (key, value) in over {
        let name = scalar_text(key).unwrap_or_default();
        let Some(current) = base.get_mut(key) else {
            base.insert(key.clone(), value.clone());
            continue;
        };
        let n = name.as_str();
        let (mut old, new) = if KEY_VALUE.contains(&n) {
            (key_value_mapping(current), key_value_mapping(value))
        } else if NAMED.contains(&n) {
            (named_mapping(n, current), named_mapping(n, value))
        } else if n == "build" {
            (build_mapping(current), build_mapping(value))
        } else {
            (current.clone(), value.clone())
        };
        let merged = match (&mut old, &new) {
            (Value::Mapping(o), Value::Mapping(v))
                if KEY_VALUE.contains(&n) || NAMED.contains(&n) || NESTED.contains(&n) =>
            {
                merge_mappings(o, v);
                old
            }
            (Value::Sequence(o), Value::Sequence(v)) if APPENDED.contains(&n) => {
                for item in v {
                    if !o.contains(item) {
                        o.push(item.clone());
                    }
                }
                old
            }
            _ => new,
        };
        *current = merged;
    }
}

/// The merged `services`, `networks`, `volumes` and `name` of several files.
pub fn merge_files(files: &[SourceFile]) -> Mapping {
    let mut out = Mapping::new();
    for file in files {
        for (key, value) in &file.document {
            let is_section = matches!(scalar_text(key).as_deref(), Some("services"));
            match (out.get_mut(key), value) {
                (Some(Value::Mapping(current)), Value::Mapping(over)) if is_section => {
                    for (name, service) in over {
                        match (current.get_mut(name), service) {
                            (Some(Value::Mapping(b)), Value::Mapping(o)) => merge_service(b, o),
                            _ => {
                                current.insert(name.clone(), service.clone());
                            }
                        }
                    }
                }
                (Some(Value::Mapping(current)), Value::Mapping(over)) => {
                    merge_mappings(current, over)
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
    }
    out
}

/// Resolves `extends` in every service of `services` (the merged `services` mapping),
/// reading other files relative to `base_dir`; `label` names the merged files in errors.
pub fn resolve_extends(
    services: &mut Mapping,
    base_dir: &Path,
    env: &Environment,
    label: &str,
) -> Result<()> {
    let names: Vec<Value> = services.keys().cloned().collect();
    let mut cache: BTreeMap<String, Mapping> = BTreeMap::new();
    for name in names {
        let mut chain = Vec::new();
        let resolved = resolve_one(
            services, &name, base_dir, env, label, &mut chain, &mut cache,
        )?;
        services.insert(name, Value::Mapping(resolved));
    }
    Ok(())
}

fn resolve_one(
    services: &Mapping,
    name: &Value,
    base_dir: &Path,
    env: &Environment,
    label: &str,
    chain: &mut Vec<String>,
    cache: &mut BTreeMap<String, Mapping>,
) -> Result<Mapping> {
    let service_name = scalar_text(name).unwrap_or_default();
    let at = |key: &str| Location::new(label, format!("services.{service_name}"), key);
    let Some(Value::Mapping(body)) = services.get(name) else {
        return Err(ComposeError::Reference {
            at: at(""),
            message: format!("extends a service {service_name:?} that does not exist"),
        });
    };
    let mut body = body.clone();
    let Some(extends) = body.remove("extends") else {
        return Ok(body);
    };
    let extends: ExtendsLong = match extends {
        Value::String(service) => ExtendsLong {
            service,
            file: None,
        },
        other => serde_norway::from_value(other).map_err(|e| {
            crate::source::describe(
                label,
                &format!("services.{service_name}"),
                "extends",
                &e.to_string(),
            )
        })?,
    };
    let step = format!(
        "{}:{}",
        extends.file.as_deref().unwrap_or(label),
        service_name
    );
    if chain.contains(&step) {
        chain.push(step);
        return Err(ComposeError::Cycle {
            file: label.to_owned(),
            cycle: chain.clone(),
        });
    }
    chain.push(step);
    let base = match &extends.file {
        None => resolve_one(
            services,
            &Value::String(extends.service.clone()),
            base_dir,
            env,
            label,
            chain,
            cache,
        )?,
        Some(file) => {
            let path = base_dir.join(file);
            let other = read_source(&path, env)?;
            let other_dir = path.parent().unwrap_or(base_dir).to_path_buf();
            let other_services = other.section("services");
            let key = format!("{}#{}", path.display(), extends.service);
            if let Some(done) = cache.get(&key) {
                done.clone()
            } else {
                let done = resolve_one(
                    &other_services,
                    &Value::String(extends.service.clone()),
                    &other_dir,
                    env,
                    &other.label(),
                    chain,
                    cache,
                )?;
                let rebased = rebase_paths(done, &other_dir);
                cache.insert(key, rebased.clone());
                rebased
            }
        }
    };
    chain.pop();
    let mut merged = base;
    merge_service(&mut merged, &body);
    Ok(merged)
}

/// A path relative to `dir` made absolute (`~` and absolute paths kept).
fn absolute(text: &str, dir: &Path) -> String {
    if text.starts_with('/') || text.starts_with('~') {
        text.to_owned()
    } else {
        crate::normalize::clean_path(&dir.join(text))
            .display()
            .to_string()
    }
}

/// A service read from another file, its relative paths (build context, `env_file`,
/// bind mount sources) made absolute against that file's directory.
fn rebase_paths(mut service: Mapping, dir: &Path) -> Mapping {
    if let Some(build) = service.get_mut("build") {
        match build {
            Value::String(context) => *context = absolute(context, dir),
            Value::Mapping(long) => {
                let context = long.get("context").and_then(Value::as_str).unwrap_or(".");
                let context = absolute(context, dir);
                long.insert("context".into(), context.into());
            }
            _ => {}
        }
    }
    match service.get_mut("env_file") {
        Some(Value::String(file)) => *file = absolute(file, dir),
        Some(Value::Sequence(files)) => {
            for file in files.iter_mut() {
                if let Value::String(f) = file {
                    *f = absolute(f, dir);
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Sequence(volumes)) = service.get_mut("volumes") {
        for volume in volumes.iter_mut() {
            match volume {
                Value::String(spec) if spec.starts_with('.') => {
                    let (source, rest) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
                    let rebased = absolute(source, dir);
                    *spec = if rest.is_empty() {
                        rebased
                    } else {
                        format!("{rebased}:{rest}")
                    };
                }
                Value::Mapping(long)
                    if long.get("type").and_then(Value::as_str) == Some("bind") =>
                {
                    if let Some(Value::String(source)) = long.get_mut("source") {
                        *source = absolute(source, dir);
                    }
                }
                _ => {}
            }
        }
    }
    service
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Mapping {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn override_rules() {
        let mut base = yaml(
            "image: a\ncommand: [x]\nenvironment: [A=1, B=2]\nports: ['80']\nnetworks: [front]\nhealthcheck: {test: [CMD, t], interval: 1s}\n",
        );
        let over = yaml(
            "image: b\ncommand: y\nenvironment: {B: '3', C: '4'}\nports: ['81', '80']\nnetworks: {back: {aliases: [x]}}\nhealthcheck: {interval: 2s}\n",
        );
        merge_service(&mut base, &over);
        let expected = yaml(
            "image: b\ncommand: y\nenvironment: {A: '1', B: '3', C: '4'}\nports: ['80', '81']\nnetworks: {front: null, back: {aliases: [x]}}\nhealthcheck: {test: [CMD, t], interval: 2s}\n",
        );
        assert_eq!(base, expected);
    }

    #[test]
    fn extends_in_the_same_file_and_cycles() {
        let mut services = yaml(
            "base: {image: busybox, environment: {A: '1'}}\nweb: {extends: base, command: [sh]}\n",
        );
        resolve_extends(&mut services, Path::new("/"), &Environment::new(), "f.yml").unwrap();
        assert_eq!(
            services.get("web").unwrap(),
            &Value::Mapping(yaml(
                "image: busybox\nenvironment: {A: '1'}\ncommand: [sh]\n"
            ))
        );
        let mut looped = yaml("a: {extends: b}\nb: {extends: a}\n");
        let err =
            resolve_extends(&mut looped, Path::new("/"), &Environment::new(), "f.yml").unwrap_err();
        assert!(err.to_string().contains("dependency cycle"), "{err}");
    }

    #[test]
    fn services_from_other_directories_keep_their_paths() {
        let service = yaml("build: ./app\nenv_file: [a.env]\nvolumes: ['./data:/data:ro', 'named:/n', {type: bind, source: ../x, target: /x}]\n");
        let rebased = rebase_paths(service, Path::new("/srv/common"));
        let expected = yaml("build: /srv/common/app\nenv_file: [/srv/common/a.env]\nvolumes: ['/srv/common/data:/data:ro', 'named:/n', {type: bind, source: /srv/x, target: /x}]\n");
        assert_eq!(rebased, expected);
    }
}
