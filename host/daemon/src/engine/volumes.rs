//! Named volumes: directories under `<data-root>/volumes/<name>/_data`, with their labels
//! (if any) in `<name>/labels.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::EngineError;

/// One volume.
#[derive(Debug, Clone)]
pub struct Volume {
    /// Name.
    pub name: String,
    /// Host path of its data.
    pub mountpoint: PathBuf,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Labels given at creation.
    pub labels: HashMap<String, String>,
}

/// The label dockerd puts on volumes made for a container's anonymous mounts.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
/// Longest volume name: one path component.
const MAX_NAME: usize = 255;

/// All named volumes.
pub struct VolumeStore {
    root: PathBuf,
}

impl VolumeStore {
    /// Open (create) the volume directory.
    pub fn open(root: &Path) -> Result<Self, EngineError> {
        std::fs::create_dir_all(root)
            .map_err(|e| EngineError::internal(format!("creating {}: {e}", root.display())))?;
        Ok(VolumeStore {
            root: root.to_path_buf(),
        })
    }

    fn validate(name: &str) -> Result<(), EngineError> {
        if name.len() > MAX_NAME {
            return Err(EngineError::bad_request(format!(
                "create {}...: volume name is too long ({} characters; at most {MAX_NAME})",
                name.chars().take(32).collect::<String>(),
                name.len()
            )));
        }
        let ok = name.len() >= 2
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
            Ok(())
        } else {
            Err(EngineError::bad_request(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
            )))
        }
    }

    /// Create a volume, or return the existing one.
    pub fn create(&self, name: &str) -> Result<Volume, EngineError> {
        self.create_with_labels(name, &HashMap::new())
    }

    /// Create a volume with labels, or return the existing one (its labels unchanged).
    pub fn create_with_labels(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<Volume, EngineError> {
        Self::validate(name)?;
        let dir = self.root.join(name);
        crate::state::off_worker::off_worker(|| {
            let existed = dir.exists();
            let data = dir.join("_data");
            std::fs::create_dir_all(&data)
                .map_err(|e| EngineError::internal(format!("creating volume {name}: {e}")))?;
            if !existed && !labels.is_empty() {
                let text = serde_json::to_vec(labels)
                    .map_err(|e| EngineError::internal(format!("volume {name} labels: {e}")))?;
                std::fs::write(dir.join("labels.json"), text)
                    .map_err(|e| EngineError::internal(format!("volume {name} labels: {e}")))?;
            }
            Ok::<_, EngineError>(())
        })?;
        self.get(name)
    }

    /// A volume by name.
    pub fn get(&self, name: &str) -> Result<Volume, EngineError> {
        Self::validate(name)
            .map_err(|_| EngineError::not_found(format!("get {name}: no such volume")))?;
        let dir = self.root.join(name);
        let meta = std::fs::metadata(&dir)
            .map_err(|_| EngineError::not_found(format!("get {name}: no such volume")))?;
        let created = meta
            .modified()
            .map(|t| {
                chrono::DateTime::<chrono::Utc>::from(t)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
            .unwrap_or_default();
        let labels = std::fs::read(dir.join("labels.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Volume {
            name: name.to_string(),
            mountpoint: dir.join("_data"),
            created,
            labels,
        })
    }

    /// Every volume.
    pub fn list(&self) -> Vec<Volume> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                if let Some(name) = e.file_name().to_str() {
                    if let Ok(v) = self.get(name) {
                        out.push(v);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Delete a volume and its data (the caller checks it is unused).
    pub fn remove(&self, name: &str) -> Result<(), EngineError> {
        let v = self.get(name)?;
        let dir = v
            .mountpoint
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or(v.mountpoint);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| EngineError::internal(format!("removing volume {name}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_too_long_for_a_directory_are_bad_requests() {
        let dir = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(dir.path()).unwrap();
        let long = "a".repeat(300);
        let err = store.create(&long).unwrap_err();
        assert!(matches!(err, EngineError::BadRequest(_)), "{err:?}");
        assert!(err.to_string().contains("too long"), "{err}");
        assert!(store.create(&"b".repeat(255)).is_ok());
        assert!(matches!(
            store.create("-x"),
            Err(EngineError::BadRequest(_))
        ));
    }
}
