//! `vmrun inspect`: containers first, then images, networks and volumes,
//! printed from the daemon's raw JSON.

use serde_json::Value;

use super::print_text;
use crate::api::{raw, Api};
use crate::error::{daemon_message, status_code, CliError, CliResult};
use crate::format::json_text::{compact, pretty_array};
use crate::format::Template;

/// An object as the daemon sent it (text, key order kept) and parsed.
pub type RawObject = (String, Value);

/// Arguments of `inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// Format output: `json` or a Go template (see `vmrun ps --help`)
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Only inspect objects of this type (container, image, network, volume)
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// The objects
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// How `inspect` prints each object.
#[derive(Debug, Clone)]
pub enum InspectFormat {
    /// A JSON array with 4-space indentation (docker's default).
    Pretty,
    /// One compact JSON array on one line (docker 28's `--format json`).
    Json,
    /// One template result per line.
    Template(Template),
}

/// Parses `--format` (before any API call).
pub fn prepare(format: Option<&str>) -> CliResult<InspectFormat> {
    match format.map(str::trim) {
        None | Some("") => Ok(InspectFormat::Pretty),
        Some("json") => Ok(InspectFormat::Json),
        Some(t) => Template::parse(t)
            .map(InspectFormat::Template)
            .map_err(|e| CliError::new(1, e.to_string())),
    }
}

const KINDS: [(&str, &str); 4] = [
    ("container", "/containers/{}/json"),
    ("image", "/images/{}/json"),
    ("network", "/networks/{}"),
    ("volume", "/volumes/{}"),
];

/// Looks `name` up as each kind in turn. `Err(message)` when nothing has it:
/// the daemon's 404 message ("Error response from daemon: …") when only one
/// kind was asked for, as docker prints it; else none.
pub async fn find_object(
    api: &Api,
    name: &str,
    only: Option<&str>,
) -> CliResult<Result<RawObject, Option<String>>> {
    let mut not_found = None;
    for (kind, path) in KINDS {
        if only.is_some_and(|o| o != kind) {
            continue;
        }
        let path = path.replace("{}", &raw::encode(name));
        match api.get_raw_json(&path).await {
            Ok(v) => return Ok(Ok(v)),
            Err(e) if status_code(&e) == Some(404) => {
                not_found = only.map(|_| daemon_message(&e));
            }
            Err(e) => return Err(CliError::new(1, daemon_message(&e))),
        }
    }
    Ok(Err(not_found))
}

/// Renders found objects in the chosen format.
pub fn render(objects: &[RawObject], format: &InspectFormat) -> CliResult<String> {
    match format {
        InspectFormat::Pretty => {
            let texts: Vec<String> = objects.iter().map(|(t, _)| t.clone()).collect();
            Ok(format!("{}\n", pretty_array(&texts)))
        }
        InspectFormat::Json => {
            let items: Vec<String> = objects.iter().map(|(t, _)| compact(t)).collect();
            Ok(format!("[{}]\n", items.join(",")))
        }
        InspectFormat::Template(t) => {
            let mut out = String::new();
            for (_, o) in objects {
                out.push_str(&t.execute(o).map_err(|e| CliError::new(1, e.to_string()))?);
                out.push('\n');
            }
            Ok(out)
        }
    }
}

/// `vmrun inspect`.
pub async fn inspect(api: &Api, args: &InspectArgs, format: &InspectFormat) -> CliResult<i32> {
    if let Some(kind) = &args.kind {
        if !KINDS.iter().any(|(k, _)| k == kind) {
            return Err(CliError::new(
                1,
                format!("\"{kind}\" is not a valid value for --type"),
            ));
        }
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &args.names {
        match find_object(api, name, args.kind.as_deref()).await? {
            Ok(v) => found.push(v),
            Err(message) => missing.push(match message {
                Some(m) => m,
                None => format!("Error: No such object: {name}"),
            }),
        }
    }
    print_text(&render(&found, format)?);
    if missing.is_empty() {
        return Ok(0);
    }
    for message in &missing {
        eprintln!("{message}");
    }
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_docker_style() {
        let v = json!({"Id": "a", "State": {"Status": "running", "ExitCode": 0}});
        let objs = vec![(
            "{\"Id\": \"a\", \"State\": {\"Status\": \"running\", \"ExitCode\": 0}}".to_string(),
            v,
        )];
        assert_eq!(
            render(&objs, &InspectFormat::Pretty).unwrap(),
            "[\n    {\n        \"Id\": \"a\",\n        \"State\": {\n            \"Status\": \"running\",\n            \"ExitCode\": 0\n        }\n    }\n]\n"
        );
        assert_eq!(render(&[], &InspectFormat::Pretty).unwrap(), "[]\n");
        let t = prepare(Some("{{.State.Status}} {{.State.ExitCode}}")).unwrap();
        assert_eq!(render(&objs, &t).unwrap(), "running 0\n");
        assert_eq!(
            render(&objs, &prepare(Some("json")).unwrap()).unwrap(),
            "[{\"Id\":\"a\",\"State\":{\"Status\":\"running\",\"ExitCode\":0}}]\n"
        );
        assert_eq!(
            render(&[], &prepare(Some("json")).unwrap()).unwrap(),
            "[]\n"
        );
        assert!(prepare(Some("{{range .X}}{{end}}")).is_err());
    }
}
