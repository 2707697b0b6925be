//! `-v/--volume` specs: `/abs/host:/ctr[:opts]` (bind mount),
//! `name:/ctr[:opts]` (named volume) and `/ctr` (anonymous volume).
//! Relative host paths are rejected.

/// A parsed `-v` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSpec {
    /// A bind mount or a named volume: goes into `HostConfig.Binds` as is.
    Bind {
        /// Host path (absolute) or volume name.
        source: String,
        /// Absolute path in the container.
        target: String,
        /// Comma-separated mode (`ro`, `rw`, propagation, ...), may be empty.
        mode: String,
        /// Whether `source` names a volume rather than a host path.
        named: bool,
    },
    /// An anonymous volume: goes into `Config.Volumes`.
    Anonymous {
        /// Absolute path in the container.
        target: String,
    },
}

impl VolumeSpec {
    /// The `HostConfig.Binds` entry for bind mounts and named volumes.
    pub fn bind_string(&self) -> Option<String> {
        match self {
            VolumeSpec::Bind {
                source,
                target,
                mode,
                ..
            } => Some(if mode.is_empty() {
                format!("{source}:{target}")
            } else {
                format!("{source}:{target}:{mode}")
            }),
            VolumeSpec::Anonymous { .. } => None,
        }
    }
}

const MODES: &[&str] = &[
    "ro",
    "rw",
    "z",
    "Z",
    "nocopy",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "delegated",
    "cached",
    "consistent",
];

fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Parses one `-v` value.
pub fn parse_volume(raw: &str) -> Result<VolumeSpec, String> {
    let invalid = |why: &str| format!("invalid volume specification: '{raw}': {why}");
    let parts: Vec<&str> = raw.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => {
            if target.is_empty() {
                return Err(invalid("empty container path"));
            }
            if !target.starts_with('/') {
                return Err(invalid("container path must be absolute"));
            }
            return Ok(VolumeSpec::Anonymous {
                target: (*target).to_string(),
            });
        }
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(invalid("too many colons")),
    };
    if source.is_empty() {
        return Err(invalid("empty source"));
    }
    if target.is_empty() {
        return Err(invalid("empty container path"));
    }
    if !target.starts_with('/') {
        return Err(invalid(&format!(
            "container path '{target}' must be absolute"
        )));
    }
    if target == "/" {
        return Err(invalid("cannot mount over the container's root"));
    }
    if mode.is_empty() && parts.len() == 3 {
        return Err(invalid("empty mode"));
    }
    let mut rw_seen = 0;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        if !MODES.contains(&m) {
            return Err(invalid(&format!("invalid mode: {m}")));
        }
        if m == "ro" || m == "rw" {
            rw_seen += 1;
        }
    }
    if rw_seen > 1 {
        return Err(invalid("both ro and rw given"));
    }
    let named = if source.starts_with('/') {
        false
    } else if valid_volume_name(source) {
        true
    } else if source.starts_with('.') || source.contains('/') || source.starts_with('~') {
        return Err(format!(
            "invalid volume specification: '{raw}': relative host path '{source}' (use an absolute path)"
        ));
    } else {
        return Err(invalid(&format!("invalid volume name '{source}'")));
    };
    Ok(VolumeSpec::Bind {
        source: source.to_string(),
        target: target.to_string(),
        mode: mode.to_string(),
        named,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_and_named_volumes() {
        let spec = parse_volume("/data:/srv:ro").unwrap();
        assert_eq!(spec.bind_string().as_deref(), Some("/data:/srv:ro"));
        assert!(matches!(spec, VolumeSpec::Bind { named: false, .. }));
        let spec = parse_volume("cache:/var/cache").unwrap();
        assert_eq!(spec.bind_string().as_deref(), Some("cache:/var/cache"));
        assert!(matches!(spec, VolumeSpec::Bind { named: true, .. }));
        assert_eq!(
            parse_volume("/ctr").unwrap(),
            VolumeSpec::Anonymous {
                target: "/ctr".into()
            }
        );
        assert!(parse_volume("/a:/b:rw,rshared").is_ok());
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(parse_volume("./data:/srv")
            .unwrap_err()
            .contains("relative host path"));
        assert!(parse_volume("data/x:/srv")
            .unwrap_err()
            .contains("relative host path"));
        assert!(parse_volume("/a:srv")
            .unwrap_err()
            .contains("must be absolute"));
        assert!(parse_volume("/a:/b:rx")
            .unwrap_err()
            .contains("invalid mode: rx"));
        assert!(parse_volume("/a:/b:ro,rw").is_err());
        assert!(parse_volume("/a:/b:c:d").is_err());
        assert!(parse_volume("").is_err());
        assert!(parse_volume("rel").is_err());
        assert!(parse_volume(":/b").is_err());
        assert!(parse_volume("/a:/").is_err());
    }
}
