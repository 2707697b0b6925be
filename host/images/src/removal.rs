//! Removing images, pruning, container holds on layers, and disk usage.
//!
//! Removal follows dockerd's rules (`docker rmi`, `docker image prune`): a name only
//! untags unless it was the image's last reference; an id deletes the image with all its
//! references. Containers are described by the caller ([`ContainerUse`]); the layers they
//! run on are *held* ([`ImageStore::hold`]), so deleting an image whose layers a stopped
//! container still uses (`rmi -f`) keeps those layers until the container is removed.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::digest::Digest;
use crate::error::ImageError;
use crate::image::RemovedItem;
use crate::index::{ImageRecord, Index};
use crate::lookup::{find_image, tag_key};
use crate::reference::Reference;
use crate::store::{short_id, ImageStore};

/// A container as image removal needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerUse {
    /// The container's id.
    pub id: String,
    /// The id (`sha256:…`) of the image it was created from.
    pub image_id: String,
    /// Whether it is running (running containers block even a forced delete).
    pub running: bool,
}

/// Which images `prune` removes.
#[derive(Clone, Debug, Default)]
pub struct PruneOptions {
    /// Every image no container uses, not only untagged ones (`docker image prune -a`).
    pub all: bool,
    /// Only images whose config has these labels (`key` or `key=value`).
    pub labels: Vec<String>,
    /// Only images whose config lacks these labels (`label!=`).
    pub labels_not: Vec<String>,
}

/// What `prune` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// References untagged, images and layers deleted.
    pub deleted: Vec<RemovedItem>,
    /// Bytes of unpacked layer content deleted.
    pub space_reclaimed: u64,
}

/// Disk usage of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUsage {
    /// `sha256:…`.
    pub id: String,
    /// Bytes of all its layers.
    pub size: u64,
    /// Bytes of its layers that other images use too.
    pub shared_size: u64,
}

/// Disk usage of the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Bytes of unpacked layers, each shared layer counted once.
    pub layers_size: u64,
    /// Per image.
    pub images: Vec<ImageUsage>,
}

impl ImageStore {
    /// Removes `reference` as `docker rmi [-f]` does, given every container.
    ///
    /// * By name (tag or digest reference): untags it; if that was the last reference the
    ///   image is deleted unless a container uses it. Without `force`, untagging the last
    ///   reference of an image a container uses is a conflict.
    /// * By id: deletes the image and all its references. Without `force`, an image
    ///   tagged in several repositories or used by a stopped container is a conflict;
    ///   one used by a running container is a conflict even with `force`.
    ///
    /// Deleted images' layers stay while a container holds them.
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        containers: &[ContainerUse],
    ) -> Result<Vec<RemovedItem>, ImageError> {
        let _writer = self.lock_writer();
        let mut index = self.read_index().clone();
        let id = find_image(&index, reference)?;
        let users: Vec<&ContainerUse> = containers.iter().filter(|c| c.image_id == id).collect();
        let by_name = !is_id_reference(&index, reference);
        let mut removed = Vec::new();
        if by_name {
            let refs = references_of(&index, &id);
            if !force && is_single_reference(&refs) {
                if let Some(user) = users.first() {
                    return Err(ImageError::Conflict(format!(
                        "unable to remove repository reference \"{reference}\" (must force) - container {} is using its referenced image {}",
                        short_id(&user.id),
                        short_id(&id)
                    )));
                }
            }
            untag(&mut index, &id, reference, &mut removed);
            let blocked = users.iter().any(|u| u.running || !force);
            if !references_of(&index, &id).is_empty() || blocked {
                // Still named, or left dangling for the containers that use it: dockerd
                // ignores a delete conflict quietly once a name was removed.
                self.commit_index(index)?;
                return Ok(removed);
            }
        } else {
            if let Some(user) = users.iter().find(|u| u.running) {
                return Err(delete_conflict(
                    &id,
                    true,
                    &format!(
                        "image is being used by running container {}",
                        short_id(&user.id)
                    ),
                ));
            }
            if !force {
                let repos: BTreeSet<String> = references_of(&index, &id)
                    .iter()
                    .filter_map(|r| Reference::parse(r).ok())
                    .map(|r| r.repository())
                    .collect();
                if repos.len() > 1 {
                    return Err(delete_conflict(
                        &id,
                        false,
                        "image is referenced in multiple repositories",
                    ));
                }
                if let Some(user) = users.first() {
                    return Err(delete_conflict(
                        &id,
                        false,
                        &format!(
                            "image is being used by stopped container {}",
                            short_id(&user.id)
                        ),
                    ));
                }
            }
        }
        let mut parent = index.images.get(&id).and_then(|r| r.parent.clone());
        let (deleted, _) = self.delete_image(index, &id)?;
        removed.extend(deleted);
        // Like dockerd: untagged parents left without children (a build's step images)
        // go with it, up the chain.
        while let Some(p) = parent {
            let index = self.read_index().clone();
            let Some(record) = index.images.get(&p) else {
                break;
            };
            let has_child = index
                .images
                .values()
                .any(|r| r.parent.as_deref() == Some(p.as_str()));
            let used = containers.iter().any(|c| c.image_id == p);
            if has_child || used || !references_of(&index, &p).is_empty() {
                break;
            }
            parent = record.parent.clone();
            let (deleted, _) = self.delete_image(index, &p)?;
            removed.extend(deleted);
        }
        Ok(removed)
    }

    /// Removes untagged images (every image with `all`) that no container uses.
    pub fn prune(
        &self,
        opts: &PruneOptions,
        containers: &[ContainerUse],
    ) -> Result<PruneReport, ImageError> {
        let used: HashSet<&str> = containers.iter().map(|c| c.image_id.as_str()).collect();
        let candidates: Vec<String> = {
            let index = self.read_index();
            index
                .images
                .iter()
                .filter(|(id, _)| !used.contains(id.as_str()))
                .filter(|(id, _)| opts.all || index.tags_of(id).is_empty())
                .map(|(id, _)| id.clone())
                .collect()
        };
        let mut report = PruneReport::default();
        for id in candidates {
            let image = self.resolve(&id)?;
            let labels = image
                .config
                .config()
                .as_ref()
                .and_then(|c| c.labels().clone())
                .unwrap_or_default();
            if !opts.labels.iter().all(|l| label_matches(&labels, l))
                || opts.labels_not.iter().any(|l| label_matches(&labels, l))
            {
                continue;
            }
            let _writer = self.lock_writer();
            let index = self.read_index().clone();
            if !index.images.contains_key(&id) {
                continue;
            }
            let (deleted, bytes) = self.delete_image(index, &id)?;
            report.deleted.extend(deleted);
            report.space_reclaimed += bytes;
        }
        Ok(report)
    }

    /// Records that `holder` (a container) runs on the layers of image `image_id`.
    pub fn hold(&self, holder: &str, image_id: &str) -> Result<(), ImageError> {
        let _writer = self.lock_writer();
        let mut index = self.read_index().clone();
        let record = index
            .images
            .get(image_id)
            .ok_or_else(|| ImageError::NotFound(image_id.to_owned()))?;
        let layers: BTreeSet<Digest> = record.layers.iter().map(|l| l.chain_id.clone()).collect();
        if index.holds.get(holder) == Some(&layers) {
            return Ok(());
        }
        index.holds.insert(holder.to_owned(), layers);
        self.commit_index(index)
    }

    /// Drops `holder`'s hold; layers nothing references any more are deleted.
    pub fn release(&self, holder: &str) -> Result<(), ImageError> {
        self.retain_holders_where(&|h| h != holder)
    }

    /// Drops the holds of every holder not in `live` (containers removed while the
    /// daemon was down), deleting layers nothing references any more.
    pub fn retain_holders(&self, live: &HashSet<String>) -> Result<(), ImageError> {
        self.retain_holders_where(&|h| live.contains(h))
    }

    /// Disk usage: each image's size and shared part, and the store's total with every
    /// shared layer counted once.
    pub fn disk_usage(&self) -> DiskUsage {
        let index = self.read_index();
        let mut users: BTreeMap<&Digest, (u64, usize)> = BTreeMap::new();
        for record in index.images.values() {
            for layer in &record.layers {
                let entry = users.entry(&layer.chain_id).or_insert((layer.size, 0));
                entry.1 += 1;
            }
        }
        let images = index
            .images
            .iter()
            .map(|(id, record)| ImageUsage {
                id: id.clone(),
                size: record.layers.iter().map(|l| l.size).sum(),
                shared_size: record
                    .layers
                    .iter()
                    .filter(|l| users.get(&l.chain_id).is_some_and(|u| u.1 > 1))
                    .map(|l| l.size)
                    .sum(),
            })
            .collect();
        DiskUsage {
            layers_size: users.values().map(|(size, _)| size).sum(),
            images,
        }
    }

    fn retain_holders_where(&self, keep: &dyn Fn(&str) -> bool) -> Result<(), ImageError> {
        let _writer = self.lock_writer();
        let mut index = self.read_index().clone();
        let before = index.holds.len();
        let dropped: BTreeSet<Digest> = index
            .holds
            .iter()
            .filter(|(h, _)| !keep(h))
            .flat_map(|(_, layers)| layers.iter().cloned())
            .collect();
        index.holds.retain(|h, _| keep(h));
        if index.holds.len() == before {
            return Ok(());
        }
        let still_used = index.referenced_layers();
        self.commit_index(index)?;
        for layer in dropped.difference(&still_used) {
            if let Err(e) = self.layers.remove(layer) {
                tracing::warn!(error = %e, "layer left behind; it is removed when the store is next opened");
            }
        }
        Ok(())
    }

    /// Deletes image `id` and all its references from `index` (a copy of the current one,
    /// taken under the writer lock), commits, then deletes layers and blobs nothing else
    /// references. Returns what was removed and the bytes of layers deleted.
    fn delete_image(
        &self,
        mut index: Index,
        id: &str,
    ) -> Result<(Vec<RemovedItem>, u64), ImageError> {
        let mut removed: Vec<RemovedItem> = index
            .tags_of(id)
            .into_iter()
            .inspect(|t| {
                index.tags.remove(t);
            })
            .map(RemovedItem::Untagged)
            .collect();
        let Some(record) = index.images.remove(id) else {
            return Err(ImageError::NotFound(id.to_owned()));
        };
        removed.extend(
            record
                .repo_digests
                .iter()
                .cloned()
                .map(RemovedItem::Untagged),
        );
        removed.push(RemovedItem::Deleted(id.to_owned()));
        let still_used = index.referenced_layers();
        let blobs_used = index.referenced_blobs();
        self.commit_index(index)?;
        let mut bytes = 0;
        for layer in record.layers.iter().rev() {
            if still_used.contains(&layer.chain_id) {
                continue;
            }
            match self.layers.remove(&layer.chain_id) {
                Ok(()) => {
                    bytes += layer.size;
                    removed.push(RemovedItem::Deleted(layer.chain_id.to_string()));
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "layer left behind; it is removed when the store is next opened"
                ),
            }
        }
        for blob in record_blobs(&record).filter(|b| !blobs_used.contains(*b)) {
            if let Err(e) = self.blobs.remove(blob) {
                tracing::warn!(error = %e, "blob left behind; it is removed when the store is next opened");
            }
        }
        Ok((removed, bytes))
    }
}

fn record_blobs(record: &ImageRecord) -> impl Iterator<Item = &Digest> {
    [&record.config, &record.manifest]
        .into_iter()
        .chain(record.layers.iter().map(|l| &l.blob))
}

/// `conflict: unable to delete <short id> (must be forced|cannot be forced) - <why>`.
fn delete_conflict(id: &str, hard: bool, why: &str) -> ImageError {
    let force = if hard {
        "cannot be forced"
    } else {
        "must be forced"
    };
    ImageError::Conflict(format!(
        "unable to delete {} ({force}) - {why}",
        short_id(id)
    ))
}

/// Whether `reference` names an image by (a prefix of) its id rather than by a tag or a
/// digest reference (the order [`find_image`] resolves in).
fn is_id_reference(index: &Index, reference: &str) -> bool {
    let is_tag = tag_key(reference).is_some_and(|k| index.tags.contains_key(&k));
    let is_digest_ref = Reference::parse(reference).is_ok_and(|r| r.digest().is_some());
    !is_tag && !is_digest_ref
}

/// Tags and digest references of image `id`.
fn references_of(index: &Index, id: &str) -> Vec<String> {
    let mut refs = index.tags_of(id);
    if let Some(record) = index.images.get(id) {
        refs.extend(record.repo_digests.iter().cloned());
    }
    refs
}

/// dockerd's `isSingleReference`: at most one tag, and every reference in one repository.
fn is_single_reference(refs: &[String]) -> bool {
    let parsed: Vec<Reference> = refs
        .iter()
        .filter_map(|r| Reference::parse(r).ok())
        .collect();
    let tags = parsed.iter().filter(|r| r.digest().is_none()).count();
    let repos: BTreeSet<String> = parsed.iter().map(Reference::repository).collect();
    tags <= 1 && repos.len() <= 1
}

/// Removes the name `reference` of image `id`: a tag, or a digest reference. When a tag
/// goes and no other tag of its repository is left, that repository's digest references
/// go too (as in dockerd).
fn untag(index: &mut Index, id: &str, reference: &str, removed: &mut Vec<RemovedItem>) {
    if let Some(key) = tag_key(reference).filter(|k| index.tags.contains_key(k)) {
        index.tags.remove(&key);
        removed.push(RemovedItem::Untagged(key.clone()));
        let Ok(repo) = Reference::parse(&key).map(|r| r.repository()) else {
            return;
        };
        let tag_left = index
            .tags_of(id)
            .iter()
            .filter_map(|t| Reference::parse(t).ok())
            .any(|t| t.repository() == repo);
        if !tag_left {
            if let Some(record) = index.images.get_mut(id) {
                let (gone, kept): (Vec<String>, Vec<String>) = record
                    .repo_digests
                    .drain(..)
                    .partition(|d| Reference::parse(d).is_ok_and(|r| r.repository() == repo));
                record.repo_digests = kept;
                removed.extend(gone.into_iter().map(RemovedItem::Untagged));
            }
        }
        return;
    }
    let wanted = Reference::parse(reference).map(|r| r.to_string()).ok();
    if let (Some(wanted), Some(record)) = (wanted, index.images.get_mut(id)) {
        if let Some(pos) = record.repo_digests.iter().position(|d| *d == wanted) {
            record.repo_digests.remove(pos);
            removed.push(RemovedItem::Untagged(wanted));
        }
    }
}

/// Whether `labels` satisfy a `key` or `key=value` filter.
fn label_matches(labels: &std::collections::HashMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
        None => labels.contains_key(filter),
    }
}
