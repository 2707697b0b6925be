//! `GET /images/{name}/history`: the image config's history, newest first, as
//! dockerd answers it: each entry with the size of the layer it made (0 for
//! `empty_layer` entries), the newest one with the image id and its tags, and the
//! next ones with the ids and tags of the image's parents while there are any (a
//! build's step images); the rest `<missing>` (an image from a registry or an archive
//! has no parents).

use serde_json::json as j;
use vmrun_images::{Image, ImageError};

use super::json;
use crate::error::{ApiError, ApiResult};

pub(super) fn history(
    engine: &crate::engine::Engine,
    name: &str,
) -> ApiResult<axum::response::Response> {
    let image = engine.images.resolve(name).map_err(|e| match e {
        ImageError::NotFound(_) => ApiError::not_found(format!("No such image: {name}")),
        other => other.into(),
    })?;
    let mut out = entries(&image);
    // One history entry per parent, as dockerd walks `Parent`.
    let mut parent = image.parent.clone();
    for entry in out.iter_mut().skip(1) {
        let Some(id) = parent.take() else { break };
        let Ok(p) = engine.images.resolve(&id) else {
            break;
        };
        entry["Id"] = j!(p.id);
        entry["Tags"] = if p.repo_tags.is_empty() {
            serde_json::Value::Null
        } else {
            j!(p.repo_tags)
        };
        parent = p.parent.clone();
    }
    Ok(json(&out))
}

/// The history entries of `image`, newest first.
fn entries(image: &Image) -> Vec<serde_json::Value> {
    let history = image.config.history();
    let mut layers = image.layer_sizes.iter();
    let mut out: Vec<serde_json::Value> = history
        .iter()
        .map(|h| {
            let size = if h.empty_layer().unwrap_or(false) {
                0
            } else {
                layers.next().copied().unwrap_or(0)
            };
            let created = h
                .created()
                .as_deref()
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .map_or(0, |t| t.timestamp());
            j!({
                "Id": "<missing>",
                "Created": created,
                "CreatedBy": h.created_by().clone().unwrap_or_default(),
                "Tags": null,
                "Size": size,
                "Comment": h.comment().clone().unwrap_or_default(),
            })
        })
        .collect();
    out.reverse();
    if let Some(newest) = out.first_mut() {
        newest["Id"] = j!(image.id);
        newest["Tags"] = j!(image.repo_tags);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_with_layer_sizes_and_the_id_on_top() {
        let config: oci_spec::image::ImageConfiguration = serde_json::from_value(j!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa", "sha256:bb"]},
            "history": [
                {"created": "2024-01-02T03:04:05Z", "created_by": "ADD rootfs.tar /"},
                {"created": "2024-01-02T03:04:06Z", "created_by": "ENV A=1", "empty_layer": true},
                {"created": "2024-01-02T03:04:07Z", "created_by": "RUN make", "comment": "built"}
            ]
        }))
        .unwrap();
        let image = Image {
            id: "sha256:1234".into(),
            repo_tags: vec!["app:1".into(), "app:latest".into()],
            repo_digests: Vec::new(),
            created: None,
            size: 300,
            config,
            layer_dirs: Vec::new(),
            layer_sizes: vec![100, 200],
            architecture: "amd64".into(),
            os: "linux".into(),
            parent: None,
        };
        let e = entries(&image);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0]["Id"], "sha256:1234");
        assert_eq!(e[0]["Tags"], j!(["app:1", "app:latest"]));
        assert_eq!(e[0]["Size"], 200);
        assert_eq!(e[0]["Comment"], "built");
        assert_eq!(e[1]["Id"], "<missing>");
        assert_eq!(e[1]["Size"], 0);
        assert_eq!(e[1]["Tags"], j!(null));
        assert_eq!(e[2]["Size"], 100);
        assert_eq!(e[2]["CreatedBy"], "ADD rootfs.tar /");
        assert_eq!(e[2]["Created"], 1_704_164_645);
    }
}
