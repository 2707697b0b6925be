//! Finding an image id from what a user typed.

use crate::digest::is_lower_hex;
use crate::error::ImageError;
use crate::index::Index;
use crate::reference::Reference;

/// Shortest id prefix accepted (as docker).
pub(crate) const MIN_ID_PREFIX: usize = 4;

/// The index key a tagged reference would have (`busybox` → `busybox:latest`), if it is one.
pub(crate) fn tag_key(reference: &str) -> Option<String> {
    let r = Reference::parse(reference).ok()?;
    if r.digest().is_some() {
        return None;
    }
    Some(r.with_default_tag().to_string())
}

/// Resolves `reference` to an image id: tag, digest reference, full id, or id prefix (in that order).
pub(crate) fn find_image(index: &Index, reference: &str) -> Result<String, ImageError> {
    if let Some(key) = tag_key(reference) {
        if let Some(id) = index.tags.get(&key) {
            return Ok(id.clone());
        }
    }
    if let Ok(r) = Reference::parse(reference) {
        if let Some(digest) = r.digest() {
            return find_by_digest(index, &r, digest)
                .ok_or_else(|| ImageError::NotFound(reference.to_owned()));
        }
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if hex.len() >= MIN_ID_PREFIX && hex.len() <= 64 && is_lower_hex(hex) {
        let prefix = format!("sha256:{hex}");
        let mut matches = index.images.keys().filter(|id| id.starts_with(&prefix));
        match (matches.next(), matches.next()) {
            (Some(id), None) => return Ok(id.clone()),
            (Some(_), Some(_)) => return Err(ImageError::Ambiguous(reference.to_owned())),
            _ => {}
        }
    }
    Err(ImageError::NotFound(reference.to_owned()))
}

/// An image whose manifest has `digest` and that is known under the reference's repository.
fn find_by_digest(index: &Index, reference: &Reference, digest: &str) -> Option<String> {
    let wanted = reference.to_string();
    let repo = reference.repository();
    index.images.iter().find_map(|(id, record)| {
        let by_record = record.repo_digests.iter().any(|d| d == &wanted);
        let by_tag = record.manifest.to_string() == digest
            && index
                .tags_of(id)
                .iter()
                .filter_map(|t| Reference::parse(t).ok())
                .any(|t| t.repository() == repo);
        (by_record || by_tag).then(|| id.clone())
    })
}
