//! `vmrun volume create|ls|rm|inspect`.

use bollard::models::{ClusterVolume, Volume, VolumeCreateRequest};
use bollard::query_parameters::{ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder};
use serde_json::{json, Value};

use super::inspect::render;
use super::network::join_labels;
use super::{fail, for_each_name, print_text};
use crate::api::{raw, Api};
use crate::error::{daemon_message, CliError, CliResult};
use crate::format::human::human_size;
use crate::format::OutputFormat;
use crate::opts::env::parse_labels;
use crate::opts::filters::parse_filters;

/// Docker's default `volume ls` table.
pub const DEFAULT_VOLUME_FORMAT: &str = "table {{.Driver}}\t{{.Name}}";

/// `volume` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create {
        /// Volume driver name
        #[arg(short = 'd', long, default_value = "local")]
        driver: String,
        /// Set metadata for a volume
        #[arg(long = "label")]
        labels: Vec<String>,
        /// The volume name (generated when omitted)
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Provide filter values (`dangling=true`, `name=...`...)
        #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
        filter: Vec<String>,
        /// Format output: `json` or a Go template
        #[arg(long)]
        format: Option<String>,
    },
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes
        #[arg(short = 'f', long)]
        force: bool,
        /// The volumes
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused local volumes
    Prune {
        /// Remove all unused volumes, not just anonymous ones
        #[arg(short = 'a', long)]
        all: bool,
        /// Shared prune flags
        #[command(flatten)]
        flags: super::prune::PruneFlags,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        /// Format output: `json` or a Go template
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// The volumes
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Runs a `volume` subcommand.
pub async fn volume(api: &Api, cmd: VolumeCommand) -> CliResult<i32> {
    match cmd {
        VolumeCommand::Create {
            driver,
            labels,
            name,
        } => {
            let labels = parse_labels(&labels).map_err(CliError::usage)?;
            let req = VolumeCreateRequest {
                name,
                driver: Some(driver),
                labels: (!labels.is_empty()).then_some(labels),
                ..Default::default()
            };
            let created = api.docker.create_volume(req).await.map_err(fail)?;
            println!("{}", created.name);
            Ok(0)
        }
        VolumeCommand::Ls {
            quiet,
            filter,
            format,
        } => {
            let fmt = if quiet {
                Some("{{.Name}}")
            } else {
                format.as_deref()
            };
            let fmt = OutputFormat::parse(fmt, DEFAULT_VOLUME_FORMAT)
                .map_err(|e| CliError::new(1, e.to_string()))?;
            let resp = api
                .docker
                .list_volumes(Some(
                    ListVolumesOptionsBuilder::new()
                        .filters(&parse_filters(&filter)?)
                        .build(),
                ))
                .await
                .map_err(fail)?;
            let mut volumes = resp.volumes.unwrap_or_default();
            volumes.sort_by(|a, b| a.name.cmp(&b.name));
            let rows: Vec<_> = volumes.iter().map(volume_row).collect();
            let text = fmt
                .render(&rows, &volume_headers())
                .map_err(|e| CliError::new(1, e.to_string()))?;
            print_text(&text);
            Ok(0)
        }
        VolumeCommand::Rm { force, names } => {
            for_each_name(&names, true, |name| async move {
                let opts = RemoveVolumeOptionsBuilder::new().force(force).build();
                api.docker.remove_volume(&name, Some(opts)).await
            })
            .await
        }
        VolumeCommand::Prune { all, flags } => {
            super::prune::prune(api, super::prune::Kind::Volumes(all), &flags).await
        }
        VolumeCommand::Inspect { format, names } => {
            let format = super::inspect::prepare(format.as_deref())?;
            let mut found = Vec::new();
            let mut errors = Vec::new();
            for name in &names {
                match api
                    .get_json(&format!("/volumes/{}", raw::encode(name)))
                    .await
                {
                    Ok(v) => found.push((volume_inspect_text(&v), v)),
                    Err(e) => errors.push(daemon_message(&e)),
                }
            }
            print_text(&render(&found, &format)?);
            if errors.is_empty() {
                return Ok(0);
            }
            Err(CliError::new(1, errors.join("\n")))
        }
    }
}

/// Column titles of the `volume ls` fields, for `table` formats.
pub fn volume_headers() -> Value {
    json!({
        "Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE",
        "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP",
        "Availability": "AVAILABILITY", "Status": "STATUS",
    })
}

/// One `volume ls` row with docker's fields.
pub fn volume_row(v: &Volume) -> Value {
    let usage = v.usage_data.as_ref();
    let cluster = |f: &dyn Fn(&ClusterVolume) -> Option<String>| {
        v.cluster_volume
            .as_ref()
            .and_then(f)
            .unwrap_or_else(|| "N/A".into())
    };
    json!({
        "Availability": cluster(&|c| c.spec.as_ref()?.access_mode.as_ref()?.availability.map(|a| a.to_string())),
        "Driver": v.driver,
        "Group": cluster(&|c| c.spec.as_ref()?.group.clone()),
        "Labels": join_labels(Some(&v.labels)),
        "Links": usage.map(|u| u.ref_count.to_string()).unwrap_or_else(|| "N/A".into()),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": v.scope.map(|s| s.to_string()).unwrap_or_default(),
        "Size": usage.map(|u| human_size(u.size as f64)).unwrap_or_else(|| "N/A".into()),
        "Status": cluster(&|c| c.publish_status.as_ref().map(|_| "published".to_string())),
    })
}

/// Keys of docker's `volume.Volume` in its JSON order; `true` when Go's
/// `omitempty` drops the key for an empty value.
const VOLUME_KEYS: [(&str, bool); 10] = [
    ("ClusterVolume", true),
    ("CreatedAt", true),
    ("Driver", false),
    ("Labels", false),
    ("Mountpoint", false),
    ("Name", false),
    ("Options", false),
    ("Scope", false),
    ("Status", true),
    ("UsageData", true),
];

/// The volume as docker's CLI prints it: re-encoded from its typed model,
/// so in the model's key order and without fields the model lacks.
pub fn volume_inspect_text(v: &Value) -> String {
    let mut fields = Vec::new();
    for (key, omit_empty) in VOLUME_KEYS {
        let value = v.get(key).cloned().unwrap_or(Value::Null);
        let empty = match &value {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Object(m) => m.is_empty(),
            _ => false,
        };
        if omit_empty && empty {
            continue;
        }
        fields.push(format!("{}:{}", Value::from(key), value));
    }
    format!("{{{}}}", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_uses_dockers_key_order() {
        let v = json!({"Name": "v1", "Driver": "local", "Mountpoint": "/m",
            "CreatedAt": "2026-01-01T00:00:00Z", "Labels": {}, "Scope": "local",
            "Options": {}, "Extra": 1});
        assert_eq!(
            volume_inspect_text(&v),
            r#"{"CreatedAt":"2026-01-01T00:00:00Z","Driver":"local","Labels":{},"Mountpoint":"/m","Name":"v1","Options":{},"Scope":"local"}"#
        );
        assert_eq!(
            volume_inspect_text(&json!({"Name": "x", "Driver": "local"})),
            r#"{"Driver":"local","Labels":null,"Mountpoint":null,"Name":"x","Options":null,"Scope":null}"#
        );
    }

    #[test]
    fn ls_rows_have_dockers_fields() {
        let v = Volume {
            name: "v".into(),
            driver: "local".into(),
            mountpoint: "/m".into(),
            labels: [
                ("b".to_string(), "2".to_string()),
                ("a".to_string(), "1".to_string()),
            ]
            .into(),
            scope: Some(bollard::models::VolumeScopeEnum::LOCAL),
            ..Default::default()
        };
        let row = volume_row(&v);
        assert_eq!(row["Labels"], "a=1,b=2");
        assert_eq!(row["Scope"], "local");
        assert_eq!(row["Links"], "N/A");
        assert_eq!(row["Size"], "N/A");
        assert_eq!(row["Group"], "N/A");
    }
}
