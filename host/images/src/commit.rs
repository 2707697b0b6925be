//! [`ImageStore::commit`]: a new image from a container's writable layer on
//! top of its image, as `docker commit` makes it.
//!
//! The container's overlayfs upper directory becomes an uncompressed layer tar
//! in OCI form: a whiteout (a 0:0 character device) becomes `.wh.<name>`, an
//! opaque directory (`trusted.overlay.opaque=y`) gets `.wh..wh..opq`. The new
//! config is the parent's with the container's config (and `--change`
//! instructions) in `config`, the layer's diff id appended and one history
//! entry more. The image goes through the shared commit path, so the layer is
//! unpacked and checked like any other.

use std::fs::{self, File};
use std::io::BufWriter;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::archive::{ImportedLayer, StagedFile};
use crate::changes::apply_changes;
use crate::digest::HashingWriter;
use crate::error::{ImageError, IoContext};
use crate::image::LoadedImage;
use crate::import::{rfc3339_utc, tag_reference};
use crate::lookup::find_image;
use crate::store::ImageStore;

const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// How [`ImageStore::commit`] makes the image.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    /// Tag for the new image (`repo[:tag]`, `:latest` by default); None: untagged.
    pub reference: Option<String>,
    /// History comment (`docker commit -m`).
    pub message: Option<String>,
    /// Author (`docker commit -a`), in the config and the history entry.
    pub author: Option<String>,
    /// Dockerfile instructions applied on top of `config` (see `ImportOptions::changes`).
    pub changes: Vec<String>,
    /// The container's config in docker's keys (`Cmd`, `Env`, `WorkingDir`, ...): the new image's `config`.
    pub config: Map<String, Value>,
    /// The history entry's `created_by` (dockerd: the container's command).
    pub created_by: String,
    /// [`ImageStore::commit_step`] may move the layer directory into the store as the
    /// unpacked layer instead of unpacking the tar it writes from it (the caller gives
    /// the directory up: a build step's staging directory).
    pub take_layer_dir: bool,
}

impl ImageStore {
    /// Stores `upper_dir` (a container's overlayfs upper directory) as a new
    /// layer on top of image `parent` (an id or reference).
    pub fn commit(
        &self,
        parent: &str,
        upper_dir: &Path,
        opts: &CommitOptions,
    ) -> Result<LoadedImage, ImageError> {
        self.commit_step(Some(parent), Some(upper_dir), opts)
    }

    /// A build step's image: `parent` (None: `scratch`, an empty image) with the
    /// overlayfs-form directory `layer_dir` as a new layer, or with the config alone
    /// (`layer_dir` None: a history entry marked `empty_layer`, as docker records
    /// metadata-only instructions).
    pub fn commit_step(
        &self,
        parent: Option<&str>,
        layer_dir: Option<&Path>,
        opts: &CommitOptions,
    ) -> Result<LoadedImage, ImageError> {
        let layer = match layer_dir {
            Some(dir) => StepLayer::Dir(dir),
            None => StepLayer::Empty,
        };
        self.commit_layer(parent, layer, opts)
    }

    /// A build step's image made of `parent` and `layer`: [`Self::commit_step`], or a
    /// step another image already made ([`StepLayer::Reused`], `--cache-from`).
    pub fn commit_layer(
        &self,
        parent: Option<&str>,
        layer: StepLayer<'_>,
        opts: &CommitOptions,
    ) -> Result<LoadedImage, ImageError> {
        let layer_dir = match layer {
            StepLayer::Dir(dir) => Some(dir),
            _ => None,
        };
        let names = match &opts.reference {
            Some(reference) => vec![tag_reference(reference)?],
            None => Vec::new(),
        };
        let mut container_config = opts.config.clone();
        apply_changes(&mut container_config, &opts.changes)?;
        let record = match parent {
            Some(parent) => {
                let index = self.read_index();
                let id = find_image(&index, parent)?;
                Some(
                    index
                        .images
                        .get(&id)
                        .cloned()
                        .ok_or_else(|| ImageError::NotFound(parent.to_owned()))?,
                )
            }
            None => None,
        };
        let parent_config: Value = match &record {
            Some(record) => serde_json::from_slice(&self.blobs.read(&record.config)?)
                .map_err(|e| ImageError::json("reading the parent image's config", e))?,
            None => json!({
                "architecture": "amd64",
                "os": "linux",
                "rootfs": { "type": "layers", "diff_ids": [] },
            }),
        };
        let staging = tempfile::Builder::new()
            .prefix("commit-")
            .tempdir_in(&self.tmp)
            .ctx(|| format!("creating a staging directory in {}", self.tmp.display()))?;
        let (new_layer, diff_id, reused_entry) = match layer {
            StepLayer::Empty => (None, None, None),
            StepLayer::Dir(dir) => {
                let blob = write_layer(dir, &staging.path().join("layer.tar"))?;
                let diff_id = blob.digest.to_string();
                let layer = ImportedLayer {
                    blob,
                    media_type: OCI_LAYER_TAR.to_owned(),
                };
                (Some(layer), Some(diff_id), None)
            }
            StepLayer::Reused {
                source,
                history_index,
            } => {
                let (layer, diff_id, entry) = self.reused_step(source, history_index)?;
                (layer, diff_id, Some(entry))
            }
        };

        let created = match reused_entry.as_ref().and_then(|e| e.get("created")) {
            Some(Value::String(c)) => c.clone(),
            _ => rfc3339_utc(SystemTime::now()),
        };
        let mut config = parent_config;
        config["created"] = json!(created);
        config["config"] = Value::Object(container_config);
        if let Some(c) = config.as_object_mut() {
            c.remove("container_config");
        }
        let mut entry = match &reused_entry {
            Some(e) => e.clone(),
            None => json!({ "created": created, "created_by": opts.created_by }),
        };
        if let Some(author) = opts.author.as_deref().filter(|a| !a.is_empty()) {
            config["author"] = json!(author);
            entry["author"] = json!(author);
        }
        if let Some(message) = opts.message.as_deref().filter(|m| !m.is_empty()) {
            entry["comment"] = json!(message);
        }
        match &diff_id {
            Some(diff_id) => push_to(&mut config, &["rootfs", "diff_ids"], json!(diff_id)),
            None => entry["empty_layer"] = json!(true),
        }
        push_to(&mut config, &["history"], entry);
        let config = serde_json::to_vec(&config)
            .map_err(|e| ImageError::json("serializing the committed image's config", e))?;

        let mut layers: Vec<ImportedLayer> = record
            .iter()
            .flat_map(|r| r.layers.iter())
            .map(|l| ImportedLayer {
                blob: StagedFile {
                    path: self.blobs.path(&l.blob),
                    digest: l.blob.clone(),
                    size: l.blob_size,
                },
                media_type: l.media_type.clone(),
            })
            .collect();
        layers.extend(new_layer);
        let parent_id = match (parent, &record) {
            (Some(_), Some(r)) => Some(format!("sha256:{}", r.config.hex())),
            _ => None,
        };
        let unpacked_top = match (opts.take_layer_dir, layer_dir) {
            (true, Some(dir)) => Some(dir.to_owned()),
            _ => None,
        };
        let loaded = self.commit_synthesized(parent_id, unpacked_top, names, config, layers)?;
        drop(staging);
        tracing::info!(id = %loaded.id, ?parent, "committed an image");
        Ok(loaded)
    }
}

/// The layer a build step's image adds to its parent.
#[derive(Clone, Copy, Debug)]
pub enum StepLayer<'a> {
    /// None: a metadata-only step (`empty_layer` in its history entry).
    Empty,
    /// A directory in overlayfs form (a container's upper directory, a staging dir).
    Dir(&'a Path),
    /// What history entry `history_index` of image `source` added (its layer, if any,
    /// and the entry itself): a `--cache-from` hit.
    Reused {
        /// The image that made the step.
        source: &'a str,
        /// Its history entry for the step.
        history_index: usize,
    },
}

impl ImageStore {
    /// History entry `index` of image `source` and the layer it added (with its diff id),
    /// none for an `empty_layer` entry.
    fn reused_step(
        &self,
        source: &str,
        index: usize,
    ) -> Result<(Option<ImportedLayer>, Option<String>, Value), ImageError> {
        let index_file = self.read_index();
        let id = find_image(&index_file, source)?;
        let record = index_file
            .images
            .get(&id)
            .cloned()
            .ok_or_else(|| ImageError::NotFound(source.to_owned()))?;
        let config: Value = serde_json::from_slice(&self.blobs.read(&record.config)?)
            .map_err(|e| ImageError::json("reading a cache source's config", e))?;
        let history = config["history"].as_array().cloned().unwrap_or_default();
        let bad = |what: &str| ImageError::NotFound(format!("{source}: {what}"));
        let entry = history
            .get(index)
            .cloned()
            .ok_or_else(|| bad("no such history entry"))?;
        if entry["empty_layer"] == json!(true) {
            return Ok((None, None, entry));
        }
        let position = history[..index]
            .iter()
            .filter(|h| h["empty_layer"] != json!(true))
            .count();
        let diff_id = config["rootfs"]["diff_ids"][position]
            .as_str()
            .ok_or_else(|| bad("history and layers disagree"))?
            .to_owned();
        let l = record
            .layers
            .get(position)
            .ok_or_else(|| bad("history and layers disagree"))?;
        let layer = ImportedLayer {
            blob: StagedFile {
                path: self.blobs.path(&l.blob),
                digest: l.blob.clone(),
                size: l.blob_size,
            },
            media_type: l.media_type.clone(),
        };
        Ok((Some(layer), Some(diff_id), entry))
    }
}

/// Appends `value` to the array at `path` in `config`, creating it as needed.
fn push_to(config: &mut Value, path: &[&str], value: Value) {
    let mut at = config;
    for key in path {
        if !at.get(*key).is_some_and(|v| v.is_object() || v.is_array()) {
            at[*key] = if Some(key) == path.last() {
                json!([])
            } else {
                json!({})
            };
        }
        at = &mut at[*key];
    }
    if let Some(list) = at.as_array_mut() {
        list.push(value);
    }
}

/// Writes `upper_dir` as an OCI layer tar to `path`, hashing it.
fn write_layer(upper_dir: &Path, path: &Path) -> Result<StagedFile, ImageError> {
    let file = File::create(path).ctx(|| format!("creating {}", path.display()))?;
    let mut builder = tar::Builder::new(HashingWriter::new(BufWriter::new(file)));
    builder.mode(tar::HeaderMode::Complete);
    builder.follow_symlinks(false);
    add_dir(&mut builder, upper_dir, "")?;
    let writer = builder
        .into_inner()
        .ctx(|| format!("finishing the layer tar {}", path.display()))?;
    let (digest, size, inner) = writer.finish();
    inner
        .into_inner()
        .map_err(|e| ImageError::io(format!("writing {}", path.display()), e.into_error()))?
        .sync_all()
        .ctx(|| format!("syncing {}", path.display()))?;
    Ok(StagedFile {
        path: path.to_owned(),
        digest,
        size,
    })
}

/// Adds the entries of `dir` (the layer path `prefix`), sorted, recursively.
fn add_dir<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &str,
) -> Result<(), ImageError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .ctx(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .ctx(|| format!("listing {}", dir.display()))?;
    names.sort();
    for name in names {
        let full = dir.join(&name);
        let name = name.to_string_lossy();
        let entry = format!("{prefix}{name}");
        let meta = fs::symlink_metadata(&full).ctx(|| format!("inspecting {}", full.display()))?;
        let kind = meta.file_type();
        if kind.is_char_device() && meta.rdev() == 0 {
            let whiteout = format!("{prefix}.wh.{name}");
            append_empty(builder, &whiteout, &meta)?;
            continue;
        }
        builder
            .append_path_with_name(&full, &entry)
            .ctx(|| format!("adding {} to the layer", full.display()))?;
        if kind.is_dir() {
            if is_opaque(&full) {
                append_empty(builder, &format!("{entry}/.wh..wh..opq"), &meta)?;
            }
            add_dir(builder, &full, &format!("{entry}/"))?;
        }
    }
    Ok(())
}

/// An empty regular file (a whiteout marker) owned like `meta`.
fn append_empty<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    meta: &fs::Metadata,
) -> Result<(), ImageError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(0);
    header.set_mode(0o644);
    header.set_uid(u64::from(meta.uid()));
    header.set_gid(u64::from(meta.gid()));
    header.set_mtime(meta.mtime().max(0) as u64);
    builder
        .append_data(&mut header, name, std::io::empty())
        .ctx(|| format!("adding {name} to the layer"))
}

/// Whether overlayfs marked `dir` opaque (`trusted.overlay.opaque=y`).
fn is_opaque(dir: &Path) -> bool {
    let mut value = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut value),
        Ok(1) if value[0] == b'y'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_to_creates_missing_lists() {
        let mut config = json!({ "rootfs": { "type": "layers" } });
        push_to(&mut config, &["rootfs", "diff_ids"], json!("sha256:aa"));
        push_to(&mut config, &["history"], json!({ "created_by": "x" }));
        push_to(&mut config, &["history"], json!({ "created_by": "y" }));
        assert_eq!(config["rootfs"]["diff_ids"], json!(["sha256:aa"]));
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(config["history"][1]["created_by"], "y");
    }
}
