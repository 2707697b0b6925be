//! From a service as written ([`RawService`]) to the model's [`Service`]: short syntax
//! expanded, relative paths made absolute, `env_file` read, durations parsed. Every error
//! names the file, the service and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;

use crate::error::{ComposeError, Location, Result};
use crate::interpolate::Environment;
use crate::model::{
    Build, Condition, Dependency, Healthcheck, Mount, MountKind, Port, Service, ServiceNetwork,
};
use crate::raw::{
    kind, scalar_text, DependsLong, MapOrList, PortLong, RawHealthcheck, RawService,
    ServiceNetworkLong, StringOrList, VolumeLong,
};

/// What normalizing a service needs to know.
pub struct Context<'a> {
    /// The project name (for the default image name of a built service).
    pub project: &'a str,
    /// The directory relative paths are resolved against.
    pub base_dir: &'a Path,
    /// Variables for `environment` entries without a value.
    pub env: &'a Environment,
    /// The file(s), for errors.
    pub file: &'a str,
}

impl Context<'_> {
    fn invalid(&self, service: &str, key: &str, message: impl Into<String>) -> ComposeError {
        ComposeError::Invalid {
            at: Location::new(self.file, format!("services.{service}"), key),
            message: message.into(),
        }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let expanded = match (path.strip_prefix("~/"), std::env::var("HOME")) {
            (Some(rest), Ok(home)) => PathBuf::from(home).join(rest),
            _ => PathBuf::from(path),
        };
        let joined = self.base_dir.join(expanded);
        clean_path(&joined)
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system.
pub fn clean_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Normalizes one service.
pub fn normalize_service(name: &str, raw: RawService, ctx: &Context) -> Result<Service> {
    let bad = |key: &str, message: String| ctx.invalid(name, key, message);
    let build = raw.build.map(|b| {
        let b = b.0;
        let context = ctx.resolve(b.context.as_deref().unwrap_or("."));
        Build {
            context,
            dockerfile: b.dockerfile.unwrap_or_else(|| "Dockerfile".to_owned()),
            args: flatten(b.args, ctx.env),
            target: b.target,
            labels: flatten(b.labels, ctx.env),
        }
    });
    let image = match (&raw.image, &build) {
        (Some(image), _) => image.clone(),
        (None, Some(_)) => format!("{}-{name}", ctx.project),
        (None, None) => {
            return Err(bad(
                "image",
                "a service needs an image or a build section".into(),
            ))
        }
    };
    let mut environment = BTreeMap::new();
    for file in raw.env_file.map(|f| f.0).unwrap_or_default() {
        let path = ctx.resolve(&file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| bad("env_file", format!("{}: {e}", path.display())))?;
        environment.extend(parse_env_file(&text));
    }
    environment.extend(flatten(raw.environment, ctx.env));
    let command = raw
        .command
        .map(|c| words(c).map_err(|m| bad("command", m)))
        .transpose()?;
    let entrypoint = raw
        .entrypoint
        .map(|c| words(c).map_err(|m| bad("entrypoint", m)))
        .transpose()?;
    let mut ports = Vec::new();
    for value in raw.ports.unwrap_or_default() {
        ports.extend(parse_port(&value).map_err(|m| bad("ports", m))?);
    }
    let mut volumes = Vec::new();
    for value in raw.volumes.unwrap_or_default() {
        volumes.push(parse_mount(&value, ctx).map_err(|m| bad("volumes", m))?);
    }
    let networks = match (&raw.network_mode, raw.networks) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "networks",
                "networks and network_mode cannot be combined".into(),
            ))
        }
        (Some(_), None) => BTreeMap::new(),
        (None, None) => BTreeMap::from([("default".to_owned(), ServiceNetwork::default())]),
        (None, Some(value)) => parse_networks(&value).map_err(|m| bad("networks", m))?,
    };
    let depends_on = match raw.depends_on {
        None => BTreeMap::new(),
        Some(value) => parse_depends_on(&value).map_err(|m| bad("depends_on", m))?,
    };
    let healthcheck = raw
        .healthcheck
        .map(|h| parse_healthcheck(h).map_err(|(key, m)| bad(&format!("healthcheck.{key}"), m)))
        .transpose()?;
    if let Some(restart) = &raw.restart {
        let policy = restart.split(':').next().unwrap_or("");
        if !["no", "always", "on-failure", "unless-stopped"].contains(&policy) {
            return Err(bad(
                "restart",
                format!("{restart:?} is not one of no, always, on-failure[:N], unless-stopped"),
            ));
        }
    }
    let stop_grace_period = raw
        .stop_grace_period
        .map(|d| parse_duration(&d).map_err(|m| bad("stop_grace_period", m)))
        .transpose()?;
    let replicas = raw
        .deploy
        .as_ref()
        .and_then(|d| d.replicas)
        .or(raw.scale)
        .unwrap_or(1);
    Ok(Service {
        name: name.to_owned(),
        image,
        build,
        command,
        entrypoint,
        environment,
        ports,
        expose: raw
            .expose
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.0)
            .collect(),
        volumes,
        networks,
        network_mode: raw.network_mode,
        depends_on,
        healthcheck,
        restart: raw.restart,
        working_dir: raw.working_dir,
        user: raw.user.map(|u| u.0),
        hostname: raw.hostname,
        domainname: raw.domainname,
        container_name: raw.container_name,
        labels: flatten(raw.labels, ctx.env),
        replicas,
        profiles: raw.profiles.unwrap_or_default(),
        tty: raw.tty.unwrap_or(false),
        stdin_open: raw.stdin_open.unwrap_or(false),
        privileged: raw.privileged.unwrap_or(false),
        init: raw.init,
        read_only: raw.read_only.unwrap_or(false),
        stop_signal: raw.stop_signal,
        stop_grace_period,
        cap_add: raw.cap_add.unwrap_or_default(),
        cap_drop: raw.cap_drop.unwrap_or_default(),
        dns: raw.dns.unwrap_or_default(),
        extra_hosts: raw.extra_hosts.unwrap_or_default(),
        pull_policy: raw.pull_policy,
    })
}

/// A mapping-or-list with `KEY` entries filled from `env` (dropped when unset there).
fn flatten(values: Option<MapOrList>, env: &Environment) -> BTreeMap<String, String> {
    values
        .unwrap_or_default()
        .0
        .into_iter()
        .filter_map(|(k, v)| match v {
            Some(v) => Some((k, v)),
            None => env.get(&k).map(|v| (k, v.clone())),
        })
        .collect()
}

/// `KEY=VALUE` lines; `#` comments and blank lines skipped; quotes around a value removed.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(value);
            out.insert(key.trim().to_owned(), unquoted.to_owned());
        }
    }
    out
}

fn words(value: StringOrList) -> Result<Vec<String>, String> {
    match value {
        StringOrList::List(list) => Ok(list),
        StringOrList::Line(line) => split_shell_words(&line),
    }
}

/// Splits a command line like a POSIX shell would (quotes and backslashes), without
/// expanding anything.
pub fn split_shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated quote in {line:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated quote in {line:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated quote in {line:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A Go duration (`1s`, `1m30s`, `500ms`, `1h`) in nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {text:?} (write e.g. 1s, 1m30s, 500ms)");
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

fn parse_port(value: &Value) -> Result<Vec<Port>, String> {
    if let Value::Mapping(_) = value {
        let long: PortLong = serde_norway::from_value(value.clone()).map_err(|e| e.to_string())?;
        return Ok(vec![Port {
            target: long.target,
            published: long.published.map(|p| p.0).unwrap_or_default(),
            host_ip: long.host_ip.unwrap_or_default(),
            protocol: long.protocol.unwrap_or_else(|| "tcp".to_owned()),
        }]);
    }
    let spec = scalar_text(value)
        .ok_or_else(|| format!("expected a port spec or a mapping, found {}", kind(value)))?;
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((rest, proto)) if proto == "tcp" || proto == "udp" || proto == "sctp" => {
            (rest.to_owned(), proto.to_owned())
        }
        Some(_) => return Err(format!("invalid protocol in port spec {spec:?}")),
        None => (spec.clone(), "tcp".to_owned()),
    };
    let (host_part, container) = match rest.rsplit_once(':') {
        Some((h, c)) => (Some(h.to_owned()), c.to_owned()),
        None => (None, rest.clone()),
    };
    let (host_ip, published) = match host_part {
        None => (String::new(), String::new()),
        Some(h) => match h.rsplit_once(':') {
            Some((ip, port)) => (ip.trim_matches(['[', ']']).to_owned(), port.to_owned()),
            None => (String::new(), h),
        },
    };
    let range = |text: &str| -> Result<(u16, u16), String> {
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) if a <= b => Ok((a, b)),
            _ => Err(format!("invalid port {text:?} in {spec:?}")),
        }
    };
    let (first, last) = range(&container)?;
    if !published.is_empty() {
        range(&published)?;
    }
    Ok((first..=last)
        .map(|target| Port {
            target,
            published: published.clone(),
            host_ip: host_ip.clone(),
            protocol: protocol.clone(),
        })
        .collect())
}

fn parse_mount(value: &Value, ctx: &Context) -> Result<Mount, String> {
    let is_path = |s: &str| s.starts_with('/') || s.starts_with('.') || s.starts_with('~');
    if let Value::Mapping(_) = value {
        let long: VolumeLong =
            serde_norway::from_value(value.clone()).map_err(|e| e.to_string())?;
        let (kind, source) = match long.kind.as_str() {
            "volume" => (MountKind::Volume, long.source.unwrap_or_default()),
            "bind" => {
                let source = long.source.ok_or("a bind mount needs a source")?;
                (MountKind::Bind, ctx.resolve(&source).display().to_string())
            }
            "tmpfs" => (MountKind::Tmpfs, String::new()),
            other => return Err(format!("unsupported mount type {other:?}")),
        };
        return Ok(Mount {
            kind,
            source,
            target: long.target,
            read_only: long.read_only.unwrap_or(false),
        });
    }
    let spec = scalar_text(value).ok_or_else(|| {
        format!(
            "expected SOURCE:TARGET[:MODE] or a mapping, found {}",
            kind(value)
        )
    })?;
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => ("", *target, ""),
        [source, target] => (*source, *target, ""),
        [source, target, mode] => (*source, *target, *mode),
        _ => return Err(format!("invalid volume spec {spec:?}")),
    };
    if !target.starts_with('/') {
        return Err(format!("the target of {spec:?} must be an absolute path"));
    }
    let read_only = mode.split(',').any(|m| m == "ro");
    let (kind, source) = if source.is_empty() {
        (MountKind::Volume, String::new())
    } else if is_path(source) {
        (MountKind::Bind, ctx.resolve(source).display().to_string())
    } else {
        (MountKind::Volume, source.to_owned())
    };
    Ok(Mount {
        kind,
        source,
        target: target.to_owned(),
        read_only,
    })
}

fn parse_networks(value: &Value) -> Result<BTreeMap<String, ServiceNetwork>, String> {
    let mut out = BTreeMap::new();
    match value {
        Value::Sequence(items) => {
            for item in items {
                let name = scalar_text(item).ok_or("expected a list of network names")?;
                out.insert(name, ServiceNetwork::default());
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map {
                let name = scalar_text(k).ok_or("expected network names as keys")?;
                let long: ServiceNetworkLong = match v {
                    Value::Null => ServiceNetworkLong::default(),
                    other => serde_norway::from_value(other.clone())
                        .map_err(|e| format!("{name}: {e}"))?,
                };
                out.insert(
                    name,
                    ServiceNetwork {
                        aliases: long.aliases.unwrap_or_default(),
                    },
                );
            }
        }
        other => {
            return Err(format!(
                "expected a list or a mapping, found {}",
                kind(other)
            ))
        }
    }
    Ok(out)
}

fn parse_depends_on(value: &Value) -> Result<BTreeMap<String, Dependency>, String> {
    let started = Dependency {
        condition: Condition::ServiceStarted,
        required: true,
    };
    let mut out = BTreeMap::new();
    match value {
        Value::Sequence(items) => {
            for item in items {
                let name = scalar_text(item).ok_or("expected a list of service names")?;
                out.insert(name, started.clone());
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map {
                let name = scalar_text(k).ok_or("expected service names as keys")?;
                let long: DependsLong =
                    serde_norway::from_value(v.clone()).map_err(|e| format!("{name}: {e}"))?;
                let condition = match long.condition.as_deref() {
                    None | Some("service_started") => Condition::ServiceStarted,
                    Some("service_healthy") => Condition::ServiceHealthy,
                    Some("service_completed_successfully") => {
                        Condition::ServiceCompletedSuccessfully
                    }
                    Some(other) => {
                        return Err(format!("{name}: unknown condition {other:?} (service_started, service_healthy or service_completed_successfully)"))
                    }
                };
                out.insert(
                    name,
                    Dependency {
                        condition,
                        required: long.required.unwrap_or(true),
                    },
                );
            }
        }
        other => {
            return Err(format!(
                "expected a list or a mapping, found {}",
                kind(other)
            ))
        }
    }
    Ok(out)
}

fn parse_healthcheck(raw: RawHealthcheck) -> Result<Healthcheck, (&'static str, String)> {
    if raw.disable == Some(true) {
        return Ok(Healthcheck {
            test: vec!["NONE".to_owned()],
            ..Healthcheck::default()
        });
    }
    let test = match raw.test {
        None => Vec::new(),
        Some(StringOrList::Line(line)) => vec!["CMD-SHELL".to_owned(), line],
        Some(StringOrList::List(list)) => {
            if !list
                .first()
                .is_some_and(|f| ["CMD", "CMD-SHELL", "NONE"].contains(&f.as_str()))
            {
                return Err((
                    "test",
                    "a test list must start with CMD, CMD-SHELL or NONE".into(),
                ));
            }
            list
        }
    };
    let duration = |key: &'static str, v: Option<String>| {
        v.map(|d| parse_duration(&d).map_err(|m| (key, m)))
            .transpose()
    };
    Ok(Healthcheck {
        test,
        interval: duration("interval", raw.interval)?,
        timeout: duration("timeout", raw.timeout)?,
        start_period: duration("start_period", raw.start_period)?,
        start_interval: duration("start_interval", raw.start_interval)?,
        retries: raw.retries,
    })
}

#[cfg(test)]
mod tests;
