//! `GET /system/df`: disk used by images (shared layers counted once), containers'
//! writable layers and volumes, in the shapes `docker system df [-v]` renders.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use axum::extract::State;
use axum::response::Response;
use serde_json::json as j;

use super::images::{containers_using, summary};
use super::{convert, json, AppState};
use crate::error::ApiResult;

/// `GET /system/df`. Its `type` parameters (API 1.42+, may repeat) must each be one of
/// the four object types the spec names; all types are reported either way.
pub async fn disk_usage(
    State(engine): State<AppState>,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    for t in super::images::query_values(&uri, "type") {
        if !matches!(t.as_str(), "container" | "image" | "volume" | "build-cache") {
            return Err(crate::error::ApiError::bad_request(format!(
                "invalid type {t:?}: container, image, volume or build-cache"
            )));
        }
    }
    let task = tokio::task::spawn_blocking(move || usage(&engine));
    task.await
        .map_err(|e| crate::error::ApiError::internal(format!("disk usage task failed: {e}")))?
}

fn usage(engine: &crate::engine::Engine) -> ApiResult<Response> {
    let store_usage = engine.images.disk_usage();
    let images: Vec<serde_json::Value> = engine
        .images
        .list()?
        .iter()
        .map(|img| {
            let mut s = summary(img, containers_using(engine, &img.id).len() as i64);
            if let Some(u) = store_usage.images.iter().find(|u| u.id == img.id) {
                s.shared_size = u.shared_size as i64;
            }
            serde_json::to_value(s).unwrap_or_default()
        })
        .collect();
    let records = engine.store.list();
    let containers: Vec<serde_json::Value> = records
        .iter()
        .map(|rec| {
            let layer = engine
                .container_files(rec)
                .ok()
                .and_then(|f| f.writable_layer);
            let mut s = convert::summary(rec);
            let size_rw = layer.as_deref().map_or(0, dir_size);
            s.size_rw = Some(size_rw as i64);
            s.size_root_fs =
                Some((size_rw + engine.images.resolve(&rec.image_id).map_or(0, |i| i.size)) as i64);
            serde_json::to_value(s).unwrap_or_default()
        })
        .collect();
    let volumes: Vec<serde_json::Value> = engine
        .volumes
        .list()
        .iter()
        .map(|v| {
            let refs = records
                .iter()
                .filter(|r| r.mounts.iter().any(|m| m.name.as_deref() == Some(&v.name)))
                .count();
            j!({
                "Name": v.name,
                "Driver": "local",
                "Mountpoint": v.mountpoint,
                "CreatedAt": v.created,
                "Labels": {},
                "Scope": "local",
                "Options": {},
                "UsageData": { "Size": dir_size(&v.mountpoint), "RefCount": refs },
            })
        })
        .collect();
    Ok(json(&j!({
        "LayersSize": store_usage.layers_size,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": [],
    })))
}

/// Bytes of the regular files under `root`, each inode counted once; symlinks are not
/// followed. A missing directory is empty.
pub(crate) fn dir_size(root: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}
