//! `--cache-from`: images in the store as cache sources, with the classic builder's rules
//! (dockerd's `image/cache`). After a local cache miss, a step hits a source image S
//! when the stage's current image P is an ancestor of S by content — P's history entries
//! (author, command, comment, empty-layer flag; not the times) and layer diff ids are a
//! prefix of S's — and S's next history entry was made by the same command (its
//! `created_by` is this step's). The hit is S itself when that entry is S's last, else a
//! new image: P plus S's layer for the entry (if it added one) and the entry itself, with
//! the step's config. After a hit the search keeps to that source, as dockerd's does.

use std::sync::Mutex;

use serde_json::Value;

/// One source image: its id, history and diff ids.
#[derive(Clone, Debug)]
struct Source {
    id: String,
    history: Vec<Value>,
    diff_ids: Vec<Value>,
}

impl Source {
    fn of(id: String, raw: &Value) -> Source {
        let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
        Source {
            id,
            history: list(&raw["history"]),
            diff_ids: list(&raw["rootfs"]["diff_ids"]),
        }
    }
}

/// A source image that made the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Its id.
    pub source: String,
    /// Its history entry for the step.
    pub history_index: usize,
    /// The entry is its last: the image itself is the step's image.
    pub last: bool,
}

/// The build's cache sources.
#[derive(Debug, Default)]
pub struct CacheSources {
    sources: Mutex<Vec<Source>>,
}

/// dockerd's `history.Equal`: everything but the time.
fn same_entry(a: &Value, b: &Value) -> bool {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let empty = |v: &Value| {
        v.get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    ["author", "created_by", "comment"]
        .iter()
        .all(|k| text(a, k) == text(b, k))
        && empty(a) == empty(b)
}

impl CacheSources {
    /// Sources from `(id, raw config)` pairs.
    pub fn new(images: Vec<(String, Value)>) -> CacheSources {
        CacheSources {
            sources: Mutex::new(
                images
                    .into_iter()
                    .map(|(id, raw)| Source::of(id, &raw))
                    .collect(),
            ),
        }
    }

    /// Whether there are sources at all.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Source>> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The source that made step `created_by` on top of `parent` (its raw config; None:
    /// `scratch`).
    pub fn find(&self, parent: Option<&Value>, created_by: &str) -> Option<Hit> {
        let parent = parent.map(|raw| Source::of(String::new(), raw));
        let (p_history, p_diffs) = match &parent {
            Some(p) => (p.history.as_slice(), p.diff_ids.as_slice()),
            None => (&[][..], &[][..]),
        };
        let mut sources = self.lock();
        let found = sources.iter().find(|s| {
            s.history.len() > p_history.len()
                && s.diff_ids.len() >= p_diffs.len()
                && p_history
                    .iter()
                    .zip(&s.history)
                    .all(|(a, b)| same_entry(a, b))
                && p_diffs.iter().zip(&s.diff_ids).all(|(a, b)| a == b)
                && s.history[p_history.len()]
                    .get("created_by")
                    .and_then(Value::as_str)
                    == Some(created_by)
        })?;
        let hit = Hit {
            source: found.id.clone(),
            history_index: p_history.len(),
            last: found.history.len() == p_history.len() + 1,
        };
        let keep = found.clone();
        *sources = vec![keep];
        Some(hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(steps: &[(&str, Option<&str>)]) -> Value {
        let history: Vec<Value> = steps
            .iter()
            .map(|(cmd, layer)| match layer {
                Some(_) => json!({"created": "2020-01-01T00:00:00Z", "created_by": cmd}),
                None => json!({"created": "2021-01-01T00:00:00Z", "created_by": cmd, "empty_layer": true}),
            })
            .collect();
        let diffs: Vec<&str> = steps.iter().filter_map(|(_, l)| *l).collect();
        json!({"history": history, "rootfs": {"type": "layers", "diff_ids": diffs}})
    }

    #[test]
    fn hits_follow_the_sources_history_and_keep_to_it() {
        let base = image(&[("ADD rootfs", Some("sha256:a"))]);
        let built = image(&[
            ("ADD rootfs", Some("sha256:a")),
            ("RUN make", Some("sha256:b")),
            ("CMD [\"x\"]", None),
        ]);
        let sources = CacheSources::new(vec![("sha256:built".into(), built.clone())]);
        assert_eq!(sources.find(Some(&base), "RUN other"), None);
        let hit = sources.find(Some(&base), "RUN make").unwrap();
        assert_eq!((hit.history_index, hit.last), (1, false));
        // The next step on top of the restored image: the source's last entry.
        let restored = image(&[
            ("ADD rootfs", Some("sha256:a")),
            ("RUN make", Some("sha256:b")),
        ]);
        let hit = sources.find(Some(&restored), "CMD [\"x\"]").unwrap();
        assert_eq!(
            hit,
            Hit {
                source: "sha256:built".into(),
                history_index: 2,
                last: true
            }
        );
        // Another parent layer: no hit, whatever the command.
        let other = image(&[("ADD rootfs", Some("sha256:z"))]);
        assert_eq!(sources.find(Some(&other), "RUN make"), None);
        // From scratch.
        let s2 = CacheSources::new(vec![("sha256:built".into(), built)]);
        assert!(s2.find(None, "ADD rootfs").is_some());
    }
}
