//! Rows of `vmrun images`: one per repository:tag (or `<none>:<none>`).

use bollard::models::ImageSummary;
use serde_json::{json, Value};

use super::containers::{go_time_string, short_id};
use super::human::{human_size_with_precision, time_ago};

/// Docker's default `images` table.
pub const DEFAULT_IMAGES_FORMAT: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// Column titles of the `images` fields, for `table` formats.
pub fn images_headers() -> Value {
    json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
        "VirtualSize": "VIRTUAL SIZE",
    })
}

/// Splits `repo:tag` (a registry port is not a tag: `host:5000/x`).
pub fn split_repo_tag(reference: &str) -> (String, String) {
    let name_start = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    match reference[name_start..].rfind(':') {
        Some(i) => (
            reference[..name_start + i].to_string(),
            reference[name_start + i + 1..].to_string(),
        ),
        None => (reference.to_string(), String::new()),
    }
}

/// Docker shows Docker Hub names in their short form.
pub fn familiar_name(repo: &str) -> String {
    let repo = repo.strip_prefix("docker.io/").unwrap_or(repo);
    repo.strip_prefix("library/").unwrap_or(repo).to_string()
}

/// Builds the rows of one image. `trunc` is false with `--no-trunc`.
pub fn image_rows(image: &ImageSummary, now: i64, trunc: bool) -> Vec<Value> {
    let id = if trunc {
        short_id(&image.id)
    } else {
        image.id.clone()
    };
    let mut pairs: Vec<(String, String, String)> = Vec::new();
    for reference in &image.repo_tags {
        if reference == "<none>:<none>" {
            continue;
        }
        let (repo, tag) = split_repo_tag(reference);
        let repo = familiar_name(&repo);
        let digest = image
            .repo_digests
            .iter()
            .find_map(|d| {
                d.split_once('@')
                    .filter(|(r, _)| familiar_name(r) == repo)
                    .map(|(_, d)| d.to_string())
            })
            .unwrap_or_else(|| "<none>".into());
        pairs.push((repo, tag, digest));
    }
    if pairs.is_empty() {
        for d in &image.repo_digests {
            if let Some((repo, digest)) = d.split_once('@') {
                pairs.push((familiar_name(repo), "<none>".into(), digest.to_string()));
            }
        }
    }
    if pairs.is_empty() {
        pairs.push(("<none>".into(), "<none>".into(), "<none>".into()));
    }
    pairs.sort();
    let size = human_size_with_precision(image.size as f64, 3);
    // docker prints VirtualSize with go-units' default precision (4).
    let virtual_size = human_size_with_precision(image.size as f64, 4);
    let shared = if image.shared_size < 0 {
        "N/A".to_string()
    } else {
        human_size_with_precision(image.shared_size as f64, 3)
    };
    let unique = if image.shared_size < 0 {
        "N/A".to_string()
    } else {
        human_size_with_precision((image.size - image.shared_size) as f64, 3)
    };
    pairs
        .into_iter()
        .map(|(repo, tag, digest)| {
            json!({
                "Containers": if image.containers < 0 { "N/A".to_string() } else { image.containers.to_string() },
                "CreatedAt": go_time_string(image.created),
                "CreatedSince": time_ago(image.created, now),
                "Digest": digest,
                "ID": id,
                "Repository": repo,
                "SharedSize": shared,
                "Size": size,
                "Tag": tag,
                "UniqueSize": unique,
                "VirtualSize": virtual_size,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::OutputFormat;

    fn image(id: &str, tags: &[&str], size: i64, created: i64) -> ImageSummary {
        ImageSummary {
            id: id.into(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            size,
            created,
            shared_size: -1,
            containers: -1,
            ..Default::default()
        }
    }

    #[test]
    fn images_table_matches_docker_layout() {
        let now = 1_700_000_000;
        let images = [
            image(
                "sha256:4d53ed68b2cbd1a81bc10f518e657024c774a117787d11258744a01d6eecd489",
                &["busybox:latest", "busybox:1.36"],
                1_978_368,
                now - 1,
            ),
            image(
                "sha256:aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999",
                &[],
                77_800_000,
                now - 3 * 86400,
            ),
            image(
                "sha256:1111",
                &["localhost:5000/team/app:v1"],
                4_261_234,
                now - 7200,
            ),
        ];
        let rows: Vec<Value> = images
            .iter()
            .flat_map(|i| image_rows(i, now, true))
            .collect();
        let out = OutputFormat::parse(None, DEFAULT_IMAGES_FORMAT)
            .unwrap()
            .render(&rows, &images_headers())
            .unwrap();
        let expected = "\
REPOSITORY                TAG       IMAGE ID       CREATED        SIZE
busybox                   1.36      4d53ed68b2cb   1 second ago   1.98MB
busybox                   latest    4d53ed68b2cb   1 second ago   1.98MB
<none>                    <none>    aaaabbbbcccc   3 days ago     77.8MB
localhost:5000/team/app   v1        1111           2 hours ago    4.26MB
";
        assert_eq!(out, expected);
    }

    #[test]
    fn unknown_fields_fail_like_docker() {
        let rows = image_rows(&image("sha256:1", &["a:b"], 1, 0), 10, true);
        let bad =
            OutputFormat::parse(Some("{{.Repository}} {{.Nope}}"), DEFAULT_IMAGES_FORMAT).unwrap();
        let err = bad
            .render(&rows, &images_headers())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "template parsing error: template: executing \"\" at <.Nope>: can't evaluate field Nope"
        );
        let good = OutputFormat::parse(Some("{{json .}}|{{.Tag}}"), DEFAULT_IMAGES_FORMAT).unwrap();
        assert!(good
            .render(&rows, &images_headers())
            .unwrap()
            .ends_with("|b\n"));
    }

    #[test]
    fn repo_tag_split() {
        assert_eq!(
            split_repo_tag("busybox:latest"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            split_repo_tag("localhost:5000/x"),
            ("localhost:5000/x".into(), "".into())
        );
        assert_eq!(
            split_repo_tag("localhost:5000/x:1"),
            ("localhost:5000/x".into(), "1".into())
        );
        assert_eq!(familiar_name("docker.io/library/busybox"), "busybox");
    }
}
