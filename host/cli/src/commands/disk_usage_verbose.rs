//! `system df -v`: docker's four sections (images, containers, local volumes,
//! build cache), each a table in docker's columns (`formatter/disk_usage.go`).

use bollard::models::ContainerSummary;
use serde_json::{json, Value};

use crate::format::containers::{ps_headers, ps_row, short_id};
use crate::format::human::{human_size, human_size_with_precision, time_ago};
use crate::format::images::{familiar_name, split_repo_tag};
use crate::format::{OutputFormat, TemplateError};

const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}";
const CONTAINERS_TABLE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}";
const VOLUMES_TABLE: &str = "table {{.Name}}\t{{.Links}}\t{{.Size}}";
const BUILD_CACHE_TABLE: &str = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}";

/// The whole `system df -v` text from `GET /system/df`.
pub fn verbose_text(usage: &Value, now: i64) -> Result<String, TemplateError> {
    let list = |key: &str| usage[key].as_array().cloned().unwrap_or_default();
    let table = |format: &str, rows: &[Value], headers: &Value| {
        OutputFormat::parse(Some(format), format)?.render(rows, headers)
    };
    let images: Vec<Value> = list("Images").iter().map(|i| image_row(i, now)).collect();
    let containers: Vec<Value> = list("Containers")
        .into_iter()
        .filter_map(|c| serde_json::from_value::<ContainerSummary>(c).ok())
        .map(|c| {
            // `ps -s` adds "(virtual …)"; this table shows the writable layer only.
            let mut row = ps_row(&c, now, true);
            row["Size"] = json!(human_size_with_precision(c.size_rw.unwrap_or(0) as f64, 3));
            row
        })
        .collect();
    let volumes: Vec<Value> = list("Volumes").iter().map(volume_row).collect();
    let mut out = String::from("Images space usage:\n\n");
    out.push_str(&table(
        IMAGES_TABLE,
        &images,
        &json!({
            "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
            "Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
            "Containers": "CONTAINERS",
        }),
    )?);
    out.push_str("\nContainers space usage:\n\n");
    out.push_str(&table(CONTAINERS_TABLE, &containers, &ps_headers())?);
    out.push_str("\nLocal Volumes space usage:\n\n");
    out.push_str(&table(
        VOLUMES_TABLE,
        &volumes,
        &json!({ "Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE" }),
    )?);
    let build_cache = usage["BuilderSize"].as_i64().unwrap_or(0);
    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size(build_cache as f64)
    ));
    out.push_str(&table(
        BUILD_CACHE_TABLE,
        &[],
        &json!({
            "ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED",
            "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED",
        }),
    )?);
    Ok(out)
}

/// One image: its first tag (docker shows one row per image here), sizes with
/// three significant digits, `N/A` where the daemon sent -1.
fn image_row(image: &Value, now: i64) -> Value {
    let int = |key: &str| image[key].as_i64().unwrap_or(-1);
    let first_tag = image["RepoTags"]
        .as_array()
        .and_then(|t| t.first())
        .and_then(Value::as_str)
        .filter(|t| *t != "<none>:<none>");
    let (repo, tag) = match first_tag.map(split_repo_tag) {
        Some((repo, tag)) if !tag.is_empty() => (familiar_name(&repo), tag),
        _ => ("<none>".to_owned(), "<none>".to_owned()),
    };
    let size = int("Size");
    let shared = int("SharedSize");
    let sized = |n: i64| human_size_with_precision(n as f64, 3);
    json!({
        "Repository": repo,
        "Tag": tag,
        "ID": short_id(image["Id"].as_str().unwrap_or_default()),
        "CreatedSince": time_ago(image["Created"].as_i64().unwrap_or(0), now),
        "Size": sized(size),
        "SharedSize": if shared == -1 { "N/A".to_owned() } else { sized(shared) },
        // docker prints this one with go-units' default precision (4).
        "UniqueSize": if size == -1 || shared == -1 { "N/A".to_owned() } else { human_size((size - shared) as f64) },
        "Containers": match int("Containers") { -1 => "N/A".to_owned(), n => n.to_string() },
    })
}

fn volume_row(volume: &Value) -> Value {
    let usage = &volume["UsageData"];
    let (links, size) = if usage.is_object() {
        (
            usage["RefCount"].as_i64().unwrap_or(0).to_string(),
            human_size(usage["Size"].as_i64().unwrap_or(0) as f64),
        )
    } else {
        ("N/A".to_owned(), "N/A".to_owned())
    };
    json!({
        "Name": volume["Name"].as_str().unwrap_or_default(),
        "Links": links,
        "Size": size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_rows_read_like_docker() {
        let usage = json!({
            "Images": [
                {"Id": "sha256:0123456789abcdef", "RepoTags": ["docker.io/library/busybox:latest", "b:2"],
                 "Created": 0, "Size": 2_000_000, "SharedSize": 500_000, "Containers": 2},
                {"Id": "sha256:fedcba9876543210", "RepoTags": [], "Created": 0, "Size": 10,
                 "SharedSize": -1, "Containers": -1},
            ],
            "Containers": [],
            "Volumes": [
                {"Name": "data", "UsageData": {"Size": 4096, "RefCount": 1}},
                {"Name": "unknown", "UsageData": null},
            ],
        });
        let text = verbose_text(&usage, 86_400).unwrap();
        assert!(
            text.starts_with("Images space usage:\n\nREPOSITORY "),
            "{text}"
        );
        assert!(text.contains("busybox      latest    0123456789ab   24 hours ago   2MB       500kB         1.5MB         2\n"), "{text}");
        assert!(text.contains("<none>       <none>    fedcba987654   24 hours ago   10B       N/A           N/A           N/A\n"), "{text}");
        assert!(
            text.contains("\nContainers space usage:\n\nCONTAINER ID   IMAGE "),
            "{text}"
        );
        assert!(text.contains("data          1         4.096kB\n"), "{text}");
        assert!(text.contains("unknown       N/A       N/A\n"), "{text}");
        assert!(
            text.contains("\nBuild cache usage: 0B\n\nCACHE ID "),
            "{text}"
        );
    }
}
