//! The index of container records, written through to disk on every change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::file::{self, DecodeError};
use super::ContainerRecord;

/// Errors of the container store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No container matches.
    #[error("No such container: {0}")]
    NotFound(String),
    /// An id prefix matches several containers.
    #[error("multiple containers match {0}: use a longer id")]
    Ambiguous(String),
    /// The name is taken.
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse {
        /// The name.
        name: String,
        /// Its holder.
        id: String,
    },
    /// A record cannot be used by this daemon (written by a newer one).
    #[error("{}: {source}", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// Disk I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was attempted.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

/// File name of a record inside its container directory.
pub const RECORD_FILE: &str = "container.json";

/// All containers, by id.
pub struct ContainerStore {
    dir: PathBuf,
    records: Mutex<HashMap<String, ContainerRecord>>,
}

impl ContainerStore {
    /// Load every record under `dir` (`<data-root>/containers`). Records of earlier
    /// versions are migrated and written back in the current version. Unreadable records
    /// are skipped with a warning, never deleted; a record of a later version is an error
    /// (the daemon must not run without it, nor overwrite it).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
        let mut records = HashMap::new();
        let entries = std::fs::read_dir(dir).map_err(|source| StoreError::Io {
            context: format!("reading {}", dir.display()),
            source,
        })?;
        let mut migrated = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path().join(RECORD_FILE);
            let data = match std::fs::read(&path) {
                Ok(data) => data,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!("skipping {}: {e}", path.display());
                    continue;
                }
            };
            match file::decode(&data) {
                Ok((rec, version)) => {
                    if version != file::RECORD_VERSION {
                        migrated.push((rec.id.clone(), version));
                    }
                    records.insert(rec.id.clone(), rec);
                }
                Err(source @ DecodeError::FutureVersion { .. }) => {
                    return Err(StoreError::Record { path, source })
                }
                Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
            }
        }
        let store = ContainerStore {
            dir: dir.to_path_buf(),
            records: Mutex::new(records),
        };
        for (id, version) in migrated {
            if let Some(rec) = store.lock().get(&id) {
                store.write(rec)?;
                tracing::info!(
                    "migrated the record of container {} from version {version} to {}",
                    rec.short_id(),
                    file::RECORD_VERSION
                );
            }
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ContainerRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Find a container by full id, unique id prefix, or name (with or without `/`).
    pub fn resolve(&self, key: &str) -> Result<ContainerRecord, StoreError> {
        let records = self.lock();
        find(&records, key).cloned()
    }

    /// Every container.
    pub fn list(&self) -> Vec<ContainerRecord> {
        let mut all: Vec<_> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        all
    }

    /// Add a new container; fails if its name is taken.
    pub fn insert(&self, rec: ContainerRecord) -> Result<(), StoreError> {
        let mut records = self.lock();
        if let Some(other) = records.values().find(|r| r.name == rec.name) {
            return Err(StoreError::NameInUse {
                name: rec.name.clone(),
                id: other.id.clone(),
            });
        }
        self.write(&rec)?;
        records.insert(rec.id.clone(), rec);
        Ok(())
    }

    /// Change a container's record and persist it; returns the new record.
    pub fn update<F>(&self, id: &str, f: F) -> Result<ContainerRecord, StoreError>
    where
        F: FnOnce(&mut ContainerRecord),
    {
        let mut records = self.lock();
        let rec = records
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let mut next = rec.clone();
        f(&mut next);
        self.write(&next)?;
        *rec = next.clone();
        Ok(next)
    }

    /// [`Self::update`] only while `holds` is true of the record (checked under the same
    /// lock); `Ok(false)` when it was not, nothing changed.
    pub fn update_if<P, F>(&self, id: &str, holds: P, f: F) -> Result<bool, StoreError>
    where
        P: FnOnce(&ContainerRecord) -> bool,
        F: FnOnce(&mut ContainerRecord),
    {
        let mut records = self.lock();
        let rec = records
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        if !holds(rec) {
            return Ok(false);
        }
        let mut next = rec.clone();
        f(&mut next);
        self.write(&next)?;
        *rec = next;
        Ok(true)
    }

    /// Rename, checking the new name is free.
    pub fn rename(&self, id: &str, name: &str) -> Result<(), StoreError> {
        let mut records = self.lock();
        if let Some(other) = records.values().find(|r| r.name == name && r.id != id) {
            return Err(StoreError::NameInUse {
                name: name.to_string(),
                id: other.id.clone(),
            });
        }
        let rec = records
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let mut next = rec.clone();
        next.name = name.to_string();
        self.write(&next)?;
        *rec = next;
        Ok(())
    }

    /// Forget a container (its directory is removed by the caller).
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Writes `rec` under a temporary name and renames it over the record, off the async
    /// workers ([`super::off_worker`]).
    fn write(&self, rec: &ContainerRecord) -> Result<(), StoreError> {
        super::off_worker::off_worker(|| self.write_now(rec))
    }

    fn write_now(&self, rec: &ContainerRecord) -> Result<(), StoreError> {
        let dir = self.dir.join(&rec.id);
        let io = |context: String| move |source| StoreError::Io { context, source };
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let path = dir.join(RECORD_FILE);
        let tmp = dir.join(format!("{RECORD_FILE}.tmp"));
        let data = file::encode(rec).map_err(|e| StoreError::Io {
            context: "encoding the record".into(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&tmp, data).map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("renaming to {}", path.display())))?;
        Ok(())
    }
}

fn find<'a>(
    records: &'a HashMap<String, ContainerRecord>,
    key: &str,
) -> Result<&'a ContainerRecord, StoreError> {
    if let Some(r) = records.get(key) {
        return Ok(r);
    }
    let name = key.strip_prefix('/').unwrap_or(key);
    if let Some(r) = records.values().find(|r| r.name == name) {
        return Ok(r);
    }
    let mut matches = records
        .values()
        .filter(|r| !key.is_empty() && r.id.starts_with(key));
    match (matches.next(), matches.next()) {
        (Some(r), None) => Ok(r),
        (Some(_), Some(_)) => Err(StoreError::Ambiguous(key.to_string())),
        _ => Err(StoreError::NotFound(key.to_string())),
    }
}
