//! Rows of `vmrun ps`: the fields docker's container formatter offers
//! (`.ID`, `.Image`, `.Command`, `.CreatedAt`, `.RunningFor`, `.Ports`,
//! `.Status`, `.State`, `.Size`, `.Names`, `.Labels`, `.Mounts`, `.Networks`).

use bollard::models::ContainerSummary;
use serde_json::{json, Value};

use super::human::{human_size_with_precision, time_ago};
use super::ports::{displayable_ports, PortEntry};

/// Docker's default `ps` table.
pub const DEFAULT_PS_FORMAT: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// Column titles of the `ps` fields, for `table` formats.
pub fn ps_headers() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "Status": "STATUS", "State": "STATE",
        "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
        "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM",
    })
}

/// Docker's `Ellipsis`: cuts `s` to `max` characters, the last being `…`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote` for the characters a command line may hold.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A short (12 character) ID without its `sha256:` prefix.
pub fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

/// The STATUS text when the daemon sends none: derived from the state.
fn fallback_status(state: &str) -> String {
    match state {
        "running" => "Up".into(),
        "created" => "Created".into(),
        "exited" => "Exited".into(),
        "" => String::new(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    }
}

/// Formats a Unix timestamp like Go's `time.Time.String()` in UTC.
pub fn go_time_string(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

/// Formats an RFC 3339 time like Go's `time.Time.String()`
/// (`2026-11-23 08:59:54.169289265 +0000 UTC`); empty when it does not parse.
pub fn go_time_string_rfc3339(text: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) else {
        return String::new();
    };
    let mut out = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    let offset = t.offset().local_minus_utc();
    if offset == 0 {
        out.push_str(" +0000 UTC");
    } else {
        let zone = t.format("%z").to_string();
        out.push_str(&format!(" {zone} {zone}"));
    }
    out
}

/// Builds the `ps` row of one container. `now` is the current Unix time;
/// `trunc` is false with `--no-trunc`.
pub fn ps_row(c: &ContainerSummary, now: i64, trunc: bool) -> Value {
    let id = c.id.clone().unwrap_or_default();
    let id = if trunc { short_id(&id) } else { id };
    let mut image = c.image.clone().unwrap_or_default();
    if trunc && image.starts_with("sha256:") {
        image = short_id(&image);
    }
    let command = c.command.clone().unwrap_or_default();
    let command = go_quote(&if trunc {
        ellipsis(&command, 20)
    } else {
        command
    });
    let names: Vec<String> = c
        .names
        .iter()
        .flatten()
        .map(|n| n.strip_prefix('/').unwrap_or(n).to_string())
        .filter(|n| !trunc || !n.contains('/'))
        .collect();
    let ports: Vec<PortEntry> = c.ports.iter().flatten().map(PortEntry::from).collect();
    let state = c.state.as_ref().map(|s| s.to_string()).unwrap_or_default();
    let status = c
        .status
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| fallback_status(&state));
    let created = c.created.unwrap_or(0);
    let mut labels: Vec<String> = c
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    labels.sort();
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .flatten()
        .map(|m| {
            let name = m
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .or(m.source.clone())
                .unwrap_or_default();
            if trunc {
                ellipsis(&name, 15)
            } else {
                name
            }
        })
        .collect();
    let mut networks: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    let size = match (c.size_rw, c.size_root_fs) {
        (Some(rw), Some(root)) => format!(
            "{} (virtual {})",
            human_size_with_precision(rw as f64, 3),
            human_size_with_precision(root as f64, 3)
        ),
        (Some(rw), None) => human_size_with_precision(rw as f64, 3),
        _ => "0B".into(),
    };
    json!({
        "Command": command,
        "CreatedAt": go_time_string(created),
        "ID": id,
        "Image": image,
        "Labels": labels.join(","),
        "LocalVolumes": c.mounts.iter().flatten().filter(|m| m.driver.as_deref() == Some("local")).count().to_string(),
        "Mounts": mounts.join(","),
        "Names": names.join(","),
        "Networks": networks.join(","),
        // docker 28 adds the image platform (API 1.48+); older engines and
        // ours do not send it, and docker then prints null.
        "Platform": Value::Null,
        "Ports": displayable_ports(&ports),
        "RunningFor": time_ago(created, now),
        "Size": size,
        "State": state,
        "Status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::OutputFormat;
    use bollard::models::{ContainerSummaryStateEnum, PortSummary, PortSummaryTypeEnum};

    fn sample(now: i64) -> Vec<ContainerSummary> {
        vec![
            ContainerSummary {
                id: Some("3f4e8a9b1c2d3e4f5a6b7c8d9e0f11223344556677889900aabbccddeeff0011".into()),
                names: Some(vec!["/web".into()]),
                image: Some("busybox".into()),
                command: Some("sh -c 'while true; do sleep 1; done'".into()),
                created: Some(now - 5),
                ports: Some(vec![PortSummary {
                    ip: Some("0.0.0.0".into()),
                    private_port: 80,
                    public_port: Some(8080),
                    typ: Some(PortSummaryTypeEnum::TCP),
                }]),
                state: Some(ContainerSummaryStateEnum::RUNNING),
                status: Some("Up 3 seconds".into()),
                ..Default::default()
            },
            ContainerSummary {
                id: Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into()),
                names: Some(vec!["/quirky_name".into()]),
                image: Some("busybox:latest".into()),
                command: Some("echo hi".into()),
                created: Some(now - 150),
                state: Some(ContainerSummaryStateEnum::EXITED),
                status: Some("Exited (0) 2 minutes ago".into()),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn ps_table_matches_docker_layout() {
        let now = 1_700_000_000;
        let rows: Vec<Value> = sample(now).iter().map(|c| ps_row(c, now, true)).collect();
        let out = OutputFormat::parse(None, DEFAULT_PS_FORMAT)
            .unwrap()
            .render(&rows, &ps_headers())
            .unwrap();
        let expected = "\
CONTAINER ID   IMAGE            COMMAND                  CREATED         STATUS                     PORTS                  NAMES
3f4e8a9b1c2d   busybox          \"sh -c 'while true; …\"   5 seconds ago   Up 3 seconds               0.0.0.0:8080->80/tcp   web
0123456789ab   busybox:latest   \"echo hi\"                2 minutes ago   Exited (0) 2 minutes ago                          quirky_name
";
        assert_eq!(out, expected);
    }

    #[test]
    fn ps_quiet_json_and_no_trunc() {
        let now = 1_700_000_000;
        let c = &sample(now)[0];
        let row = ps_row(c, now, false);
        assert_eq!(row["ID"].as_str().unwrap().len(), 64);
        assert_eq!(row["Command"], "\"sh -c 'while true; do sleep 1; done'\"");
        let json = OutputFormat::parse(Some("json"), DEFAULT_PS_FORMAT)
            .unwrap()
            .render(&[ps_row(c, now, true)], &ps_headers())
            .unwrap();
        let v: Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(v["Names"], "web");
        assert_eq!(v["State"], "running");
        let custom = OutputFormat::parse(Some("{{.Names}}: {{.Status}}"), DEFAULT_PS_FORMAT)
            .unwrap()
            .render(&[ps_row(c, now, true)], &ps_headers())
            .unwrap();
        assert_eq!(custom, "web: Up 3 seconds\n");
    }

    #[test]
    fn helpers() {
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(go_time_string(0), "1970-01-01 00:00:00 +0000 UTC");
    }
}
