//! `vmrun search`: `docker search` against the daemon (a registry's catalog), printed
//! as docker prints it.

use serde_json::{json, Value};

use super::{fail, print_text};
use crate::api::raw::encode;
use crate::api::Api;
use crate::error::{CliError, CliResult};
use crate::format::containers::ellipsis;
use crate::format::OutputFormat;

/// docker's default search table.
const DEFAULT_FORMAT: &str = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}";

/// Arguments of `search`.
#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filters: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Max number of search results
    #[arg(long)]
    pub limit: Option<u32>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// The term (REGISTRY/NAME)
    pub term: String,
}

/// Checks `--format` and `--filter` before any API call.
pub fn prepare(args: &SearchArgs) -> CliResult<OutputFormat> {
    for f in &args.filters {
        if !f.contains('=') {
            return Err(CliError::new(
                1,
                "bad format of filter (expected name=value)",
            ));
        }
    }
    OutputFormat::parse(args.format.as_deref(), DEFAULT_FORMAT)
        .map_err(|e| CliError::new(1, e.to_string()))
}

/// The `filters` query value of `--filter k=v` flags.
fn filters_json(filters: &[String]) -> String {
    let mut map = serde_json::Map::new();
    for f in filters {
        let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
        let entry = map.entry(k.to_owned()).or_insert_with(|| json!({}));
        if let Some(o) = entry.as_object_mut() {
            o.insert(v.to_owned(), Value::Bool(true));
        }
    }
    Value::Object(map).to_string()
}

fn yes(v: &Value) -> &'static str {
    if v.as_bool().unwrap_or(false) {
        "[OK]"
    } else {
        ""
    }
}

/// One row with the fields of docker's search formatter (docker 28 has no `IsAutomated`).
fn row(result: &Value, trunc: bool) -> Value {
    let description = result["description"]
        .as_str()
        .unwrap_or_default()
        .replace('\n', " ");
    json!({
        "Name": result["name"],
        "Description": if trunc { ellipsis(&description, 45) } else { description },
        "StarCount": result["star_count"].as_i64().unwrap_or(0).to_string(),
        "IsOfficial": yes(&result["is_official"]),
    })
}

/// `vmrun search`.
pub async fn search(api: &Api, args: &SearchArgs, format: &OutputFormat) -> CliResult<i32> {
    let mut path = format!("/images/search?term={}", encode(&args.term));
    if let Some(l) = args.limit {
        path.push_str(&format!("&limit={l}"));
    }
    if !args.filters.is_empty() {
        path.push_str(&format!(
            "&filters={}",
            encode(&filters_json(&args.filters))
        ));
    }
    let results = api.get_json(&path).await.map_err(fail)?;
    let rows: Vec<Value> = results
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| row(r, !args.no_trunc))
        .collect();
    let headers = json!({
        "Name": "NAME",
        "Description": "DESCRIPTION",
        "StarCount": "STARS",
        "IsOfficial": "OFFICIAL",
    });
    let text = format
        .render(&rows, &headers)
        .map_err(|e| CliError::new(1, e.to_string()))?;
    print_text(&text);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_filters() {
        let r = row(
            &json!({"name": "r:5000/a", "description": "x", "star_count": 2, "is_official": true, "is_automated": false}),
            true,
        );
        assert_eq!(r["StarCount"], "2");
        assert_eq!(r["IsOfficial"], "[OK]");
        assert_eq!(
            filters_json(&["stars=3".into(), "is-official=true".into()]),
            r#"{"is-official":{"true":true},"stars":{"3":true}}"#
        );
    }
}
