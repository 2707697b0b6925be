//! `vmrun history` (`vmrun image history`): `GET /images/{name}/history`,
//! rendered like docker's: newest first, `<missing>` for entries without an
//! image of their own, CREATED BY cut to 45 characters unless `--no-trunc`.

use bollard::models::ImageHistoryResponseItem;
use serde_json::{json, Value};

use super::{fail, now_unix, print_text};
use crate::api::Api;
use crate::error::{CliError, CliResult};
use crate::format::containers::{ellipsis, short_id};
use crate::format::human::{human_size_with_precision, time_ago};
use crate::format::OutputFormat;

/// Docker's default `history` table.
const DEFAULT_HISTORY_FORMAT: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
/// The default table with `--human=false`: absolute times.
const NON_HUMAN_HISTORY_FORMAT: &str =
    "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// Arguments of `history`.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format (docker's `-H` short form
    /// is vmrun's global `-H/--host`)
    #[arg(long = "human", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format output: `json`, `table`, `table TEMPLATE` or a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// The image
    pub image: String,
}

/// Column titles of the `history` fields.
fn history_headers() -> Value {
    json!({
        "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
    })
}

/// Checks `--format` before any API call.
pub fn prepare(args: &HistoryArgs) -> CliResult<OutputFormat> {
    let format = if args.quiet {
        Some("{{.ID}}")
    } else {
        args.format.as_deref()
    };
    let default = if args.human {
        DEFAULT_HISTORY_FORMAT
    } else {
        NON_HUMAN_HISTORY_FORMAT
    };
    OutputFormat::parse(format, default).map_err(|e| CliError::new(1, e.to_string()))
}

/// `vmrun history IMAGE`.
pub async fn history(api: &Api, args: &HistoryArgs, format: &OutputFormat) -> CliResult<i32> {
    let items = api.docker.image_history(&args.image).await.map_err(fail)?;
    let now = now_unix();
    let rows: Vec<Value> = items
        .iter()
        .map(|h| history_row(h, now, !args.no_trunc, args.human))
        .collect();
    let text = format
        .render(&rows, &history_headers())
        .map_err(|e| CliError::new(1, e.to_string()))?;
    print_text(&text);
    Ok(0)
}

/// One row, with the fields of docker's history formatter.
fn history_row(h: &ImageHistoryResponseItem, now: i64, trunc: bool, human: bool) -> Value {
    let id = if trunc { short_id(&h.id) } else { h.id.clone() };
    let created_at = chrono::DateTime::from_timestamp(h.created, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let created_since = if human {
        time_ago(h.created, now)
    } else {
        created_at.clone()
    };
    let created_by = h.created_by.replace('\t', " ");
    let created_by = if trunc {
        ellipsis(&created_by, 45)
    } else {
        created_by
    };
    let size = if human {
        human_size_with_precision(h.size as f64, 3)
    } else {
        h.size.to_string()
    };
    json!({
        "ID": id,
        "CreatedSince": created_since,
        "CreatedAt": created_at,
        "CreatedBy": created_by,
        "Size": size,
        "Comment": h.comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, created_by: &str, size: i64) -> ImageHistoryResponseItem {
        ImageHistoryResponseItem {
            id: id.into(),
            created: 1_700_000_000,
            created_by: created_by.into(),
            tags: Vec::new(),
            size,
            comment: String::new(),
        }
    }

    #[test]
    fn rows_read_like_docker() {
        let long = "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789 in /";
        let top = item("sha256:0123456789abcdef0123", long, 4_260_000);
        let row = history_row(&top, 1_700_000_000 + 3 * 86_400, true, true);
        assert_eq!(row["ID"], "0123456789ab");
        assert_eq!(row["CreatedSince"], "3 days ago");
        assert_eq!(
            row["CreatedBy"].as_str().map(|s| s.chars().count()),
            Some(45)
        );
        assert!(row["CreatedBy"].as_str().unwrap_or_default().ends_with('…'));
        assert_eq!(row["Size"], "4.26MB");
        let raw = history_row(&item("<missing>", "ENV\tA=1", 0), 0, false, false);
        assert_eq!(raw["ID"], "<missing>");
        assert_eq!(raw["CreatedBy"], "ENV A=1");
        assert_eq!(raw["Size"], "0");
        assert_eq!(raw["CreatedSince"], "2023-11-14T22:13:20Z");
    }
}
