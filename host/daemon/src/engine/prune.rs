//! `container prune`, `network prune`, `volume prune`: what is unused goes, narrowed by
//! docker's filters (`until` for containers and networks, `label`/`label!` for all three,
//! `all` for volumes: without it only anonymous volumes go, as with API 1.42 and later).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Engine, EngineError};
use crate::state::{ContainerRecord, Status};

/// Filters of a prune request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneFilters {
    /// Only what was created before this time.
    pub until: Option<DateTime<Utc>>,
    /// `key` or `key=value` that must be present.
    pub labels: Vec<String>,
    /// `key` or `key=value` that must be absent.
    pub labels_not: Vec<String>,
    /// Volumes: named ones too, not just anonymous ones.
    pub all: bool,
}

/// A Go duration (`24h`, `90m`, `1h30m`, `10s`) in seconds.
fn go_duration_secs(text: &str) -> Option<f64> {
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    (!text.is_empty()).then_some(total)
}

/// Docker's time filter values: a Unix time (`1700000000[.5]`), an RFC 3339 time or date,
/// or a duration before now (`24h`).
pub fn parse_until(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, EngineError> {
    if let Ok(secs) = value.parse::<f64>() {
        return DateTime::from_timestamp(secs.trunc() as i64, (secs.fract() * 1e9) as u32)
            .ok_or_else(|| EngineError::bad_request(format!("invalid until filter: {value}")));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    if let Some(secs) = go_duration_secs(value) {
        return Ok(now - chrono::Duration::milliseconds((secs * 1000.0) as i64));
    }
    Err(EngineError::bad_request(format!(
        "invalid until filter: failed to parse value {value} as a time"
    )))
}

impl PruneFilters {
    /// From docker's `filters` map; `allowed` names the filters this prune takes.
    pub fn parse(
        filters: &HashMap<String, Vec<String>>,
        allowed: &[&str],
    ) -> Result<PruneFilters, EngineError> {
        let mut out = PruneFilters::default();
        for (key, values) in filters {
            if !allowed.contains(&key.as_str()) {
                return Err(EngineError::bad_request(format!("invalid filter '{key}'")));
            }
            match key.as_str() {
                "until" => {
                    if values.len() > 1 {
                        return Err(EngineError::bad_request(
                            "more than one until filter specified",
                        ));
                    }
                    if let Some(v) = values.first() {
                        out.until = Some(parse_until(v, Utc::now())?);
                    }
                }
                "label" => out.labels = values.clone(),
                "label!" => out.labels_not = values.clone(),
                "all" => {
                    out.all = match values.first().map(String::as_str) {
                        None | Some("true" | "1") => true,
                        Some("false" | "0") => false,
                        Some(other) => {
                            return Err(EngineError::bad_request(format!(
                                "invalid filter 'all={other}'"
                            )))
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether labels pass `label` and `label!`.
    pub fn labels_match(&self, labels: &HashMap<String, String>) -> bool {
        let has = |f: &str| label_holds(labels.iter(), f);
        self.labels.iter().all(|f| has(f)) && !self.labels_not.iter().any(|f| has(f))
    }

    /// Whether something created at `created` (RFC 3339) passes `until`.
    pub fn before_until(&self, created: &str) -> bool {
        let Some(until) = self.until else { return true };
        DateTime::parse_from_rfc3339(created).is_ok_and(|t| t.with_timezone(&Utc) < until)
    }
}

/// Whether docker's `label` filter `filter` (`KEY` or `KEY=VALUE`) holds for `labels`.
pub fn label_holds<'a>(
    mut labels: impl Iterator<Item = (&'a String, &'a String)>,
    filter: &str,
) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.any(|(lk, lv)| lk == k && lv == v),
        None => labels.any(|(lk, _)| lk == filter),
    }
}

impl Engine {
    /// Removes stopped containers that pass the filters; their ids and the bytes their
    /// writable layers held (`measure`, taken before removal).
    pub async fn prune_containers(
        &self,
        filters: &PruneFilters,
        measure: &(dyn Fn(&ContainerRecord) -> u64 + Sync),
    ) -> (Vec<String>, u64) {
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for rec in self.store.list() {
            let stopped = matches!(
                rec.state.status,
                Status::Created | Status::Exited | Status::Dead
            );
            let labels = rec.config.labels.clone().unwrap_or_default();
            if !stopped
                || self.restarting(&rec.id)
                || !filters.before_until(&rec.created)
                || !filters.labels_match(&labels)
            {
                continue;
            }
            let size = measure(&rec);
            match self.remove_container(&rec.id, false).await {
                Ok(()) => {
                    reclaimed += size;
                    deleted.push(rec.id);
                }
                Err(e) => tracing::warn!("pruning container {}: {e}", rec.short_id()),
            }
        }
        self.events.emit(
            "container",
            "prune",
            "",
            &[("reclaimed", reclaimed.to_string())],
        );
        (deleted, reclaimed)
    }

    /// Removes user networks no container is connected to that pass the filters; their
    /// names.
    pub async fn prune_networks(&self, filters: &PruneFilters) -> Result<Vec<String>, EngineError> {
        let manager = self.network()?.clone();
        let mut deleted = Vec::new();
        for n in manager.list() {
            let predefined = [
                vmrun_network::DEFAULT_NETWORK,
                vmrun_network::HOST_NETWORK,
                vmrun_network::NONE_NETWORK,
            ]
            .contains(&n.name.as_str());
            let labels: HashMap<String, String> = n.labels.clone().into_iter().collect();
            let created = n.created.to_rfc3339();
            if predefined
                || !n.containers.is_empty()
                || !filters.before_until(&created)
                || !filters.labels_match(&labels)
            {
                continue;
            }
            let m = manager.clone();
            let id = n.id.clone();
            let removed = tokio::task::spawn_blocking(move || m.remove(&id)).await;
            match removed {
                Ok(Ok(())) => {
                    self.events
                        .emit("network", "destroy", &n.id, &[("name", n.name.clone())]);
                    deleted.push(n.name);
                }
                Ok(Err(e)) => tracing::warn!("pruning network {}: {e}", n.name),
                Err(e) => tracing::warn!("pruning network {}: {e}", n.name),
            }
        }
        self.events.emit("network", "prune", "", &[]);
        Ok(deleted)
    }

    /// Removes volumes no container mounts that pass the filters (anonymous ones only
    /// unless `all`); their names and the bytes they held (`measure`).
    pub async fn prune_volumes(
        &self,
        filters: &PruneFilters,
        measure: &(dyn Fn(&std::path::Path) -> u64 + Sync),
    ) -> (Vec<String>, u64) {
        let used: std::collections::HashSet<String> = self
            .store
            .list()
            .into_iter()
            .flat_map(|c| c.mounts.into_iter().filter_map(|m| m.name))
            .collect();
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for v in self.volumes.list() {
            let anonymous = v.labels.contains_key(super::volumes::ANONYMOUS_LABEL);
            if used.contains(&v.name)
                || (!filters.all && !anonymous)
                || !filters.labels_match(&v.labels)
            {
                continue;
            }
            let size = measure(&v.mountpoint);
            match self.remove_volume(&v.name).await {
                Ok(()) => {
                    self.events.emit("volume", "destroy", &v.name, &[]);
                    reclaimed += size;
                    deleted.push(v.name);
                }
                Err(e) => tracing::warn!("pruning volume {}: {e}", v.name),
            }
        }
        self.events.emit(
            "volume",
            "prune",
            "",
            &[("reclaimed", reclaimed.to_string())],
        );
        (deleted, reclaimed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_takes_dockers_forms() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_until("24h", now).unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_until("1700000000", now).unwrap().timestamp(),
            1_700_000_000
        );
        assert_eq!(
            parse_until("2025-12-31", now).unwrap().to_rfc3339(),
            "2025-12-31T00:00:00+00:00"
        );
        assert!(parse_until("yesterday", now).is_err());
    }

    #[test]
    fn labels_filter_like_docker() {
        let f = PruneFilters {
            labels: vec!["app".into()],
            labels_not: vec!["keep=yes".into()],
            ..Default::default()
        };
        let l = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(f.labels_match(&l(&[("app", "x")])));
        assert!(!f.labels_match(&l(&[("app", "x"), ("keep", "yes")])));
        assert!(f.labels_match(&l(&[("app", "x"), ("keep", "no")])));
        assert!(!f.labels_match(&l(&[])));
        let bad: HashMap<String, Vec<String>> = [("dangling".to_string(), vec![])].into();
        assert!(PruneFilters::parse(&bad, &["label"]).is_err());
    }
}
