//! The `com.docker.compose.config-hash` label: as docker compose v2's `ServiceHash`,
//! the SHA-256 of the service's JSON with the keys that do not change a container left
//! out (`build`, `pull_policy`, the replica count, `depends_on`, `profiles`). Our JSON is
//! our model's, not compose-go's, so the digests differ from docker compose's; what
//! matters is that an unchanged service gives the same hash and a changed one another.

use sha2::{Digest, Sha256};

use crate::model::Service;

/// Keys left out of the hash.
const IGNORED: [&str; 5] = ["build", "pull_policy", "replicas", "depends_on", "profiles"];

/// The hex SHA-256 of `service`'s configuration.
pub fn config_hash(service: &Service) -> String {
    let mut value = serde_json::to_value(service).unwrap_or(serde_json::Value::Null);
    if let Some(map) = value.as_object_mut() {
        for key in IGNORED {
            map.remove(key);
        }
    }
    // serde_json's map is ordered by key: the text, and so the hash, is stable.
    let text = value.to_string();
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_follows_what_matters() {
        let mut a = Service {
            name: "web".into(),
            image: "busybox".into(),
            replicas: 1,
            ..Service::default()
        };
        let first = config_hash(&a);
        assert_eq!(first.len(), 64);
        a.replicas = 3;
        a.profiles = vec!["debug".into()];
        assert_eq!(
            config_hash(&a),
            first,
            "scale and profiles do not change it"
        );
        a.command = Some(vec!["sleep".into(), "1".into()]);
        assert_ne!(config_hash(&a), first, "a new command does");
    }
}
