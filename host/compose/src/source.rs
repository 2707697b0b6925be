//! Compose files on disk: finding them (`compose.yaml`, `docker-compose.yml`, ... in the
//! directory or its parents, with the matching override file), reading the `.env` file,
//! parsing and interpolating each file, and checking each file's keys and types on its
//! own, so that an error names the file it is in.

use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use crate::error::{ComposeError, Location, Result};
use crate::interpolate::{interpolate_value, Environment};
use crate::raw::{RawResource, RawService, TOP_LEVEL_KEYS};

/// The names looked for, in order of preference.
pub const DEFAULT_FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// One parsed, interpolated and checked file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Its path.
    pub path: PathBuf,
    /// The whole document (a mapping).
    pub document: Mapping,
}

impl SourceFile {
    /// The path as shown in messages.
    pub fn label(&self) -> String {
        self.path.display().to_string()
    }

    /// The `services` mapping (empty when absent).
    pub fn section(&self, name: &str) -> Mapping {
        match self.document.get(name) {
            Some(Value::Mapping(m)) => m.clone(),
            _ => Mapping::new(),
        }
    }
}

/// The default files in `dir` or the nearest parent that has one: the first of
/// [`DEFAULT_FILE_NAMES`] found, then its override file if present.
pub fn find_default_files(dir: &Path) -> Result<Vec<PathBuf>> {
    for candidate in dir.ancestors() {
        for name in DEFAULT_FILE_NAMES {
            let path = candidate.join(name);
            if path.is_file() {
                let (stem, ext) = name.rsplit_once('.').unwrap_or((name, "yml"));
                let mut files = vec![path];
                let over = candidate.join(format!("{stem}.override.{ext}"));
                if over.is_file() {
                    files.push(over);
                }
                return Ok(files);
            }
        }
    }
    Err(ComposeError::NoFile {
        dir: dir.to_path_buf(),
        names: DEFAULT_FILE_NAMES.join(", "),
    })
}

/// The variables of a `.env` file, if it exists.
pub fn read_dotenv(path: &Path) -> Result<Environment> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(crate::normalize::parse_env_file(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Environment::new()),
        Err(source) => Err(ComposeError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads, parses, interpolates and checks one file.
pub fn read_source(path: &Path, env: &Environment) -> Result<SourceFile> {
    let text = std::fs::read_to_string(path).map_err(|source| ComposeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_source(path, &text, env)
}

/// Parses, interpolates and checks the text of one file.
pub fn parse_source(path: &Path, text: &str, env: &Environment) -> Result<SourceFile> {
    let label = path.display().to_string();
    let yaml_error = |message: String| ComposeError::Yaml {
        file: label.clone(),
        message,
    };
    let mut value: Value = serde_norway::from_str(text).map_err(|e| yaml_error(e.to_string()))?;
    value.apply_merge().map_err(|e| yaml_error(e.to_string()))?;
    if value.is_null() {
        value = Value::Mapping(Mapping::new());
    }
    interpolate_value(&mut value, env, &label)?;
    let Value::Mapping(document) = value else {
        return Err(yaml_error("the top level must be a mapping".into()));
    };
    let file = SourceFile {
        path: path.to_path_buf(),
        document,
    };
    check_file(&file)?;
    Ok(file)
}

fn key_text(key: &Value) -> String {
    crate::raw::scalar_text(key).unwrap_or_else(|| format!("{key:?}"))
}

/// Checks the top-level keys, each service key by key, and each network and volume.
fn check_file(file: &SourceFile) -> Result<()> {
    let label = file.label();
    for (key, value) in &file.document {
        let key = key_text(key);
        if key.starts_with("x-") {
            continue;
        }
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            return Err(ComposeError::UnknownKey {
                at: Location::new(&label, "", key),
            });
        }
        let expects_mapping = matches!(key.as_str(), "services" | "networks" | "volumes");
        if expects_mapping && !matches!(value, Value::Mapping(_) | Value::Null) {
            return Err(ComposeError::Invalid {
                at: Location::new(&label, "", key),
                message: format!("expected a mapping, found {}", crate::raw::kind(value)),
            });
        }
    }
    for (name, body) in &file.section("services") {
        let section = format!("services.{}", key_text(name));
        match body {
            Value::Mapping(map) => {
                for (key, value) in map {
                    check_key::<RawService>(&label, &section, &key_text(key), value)?;
                }
            }
            other => {
                return Err(ComposeError::Invalid {
                    at: Location::new(&label, section, ""),
                    message: format!("expected a mapping, found {}", crate::raw::kind(other)),
                })
            }
        }
    }
    for kind in ["networks", "volumes"] {
        for (name, body) in &file.section(kind) {
            let section = format!("{kind}.{}", key_text(name));
            if let Value::Mapping(map) = body {
                for (key, value) in map {
                    check_key::<RawResource>(&label, &section, &key_text(key), value)?;
                }
            } else if !body.is_null() {
                return Err(ComposeError::Invalid {
                    at: Location::new(&label, section, ""),
                    message: format!("expected a mapping, found {}", crate::raw::kind(body)),
                });
            }
        }
    }
    Ok(())
}

/// Reads `{key: value}` as a `T`, turning serde's message into an error at `key` (or at
/// `key.field` for an unknown field inside it).
fn check_key<T: serde::de::DeserializeOwned>(
    file: &str,
    section: &str,
    key: &str,
    value: &Value,
) -> Result<()> {
    if key.starts_with("x-") {
        return Ok(());
    }
    let mut single = Mapping::new();
    single.insert(Value::String(key.to_owned()), value.clone());
    match serde_norway::from_value::<T>(Value::Mapping(single)) {
        Ok(_) => Ok(()),
        Err(e) => Err(describe(file, section, key, &e.to_string())),
    }
}

/// Turns a serde message about `key` into an error.
pub fn describe(file: &str, section: &str, key: &str, message: &str) -> ComposeError {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let path = if field == key {
            key.to_owned()
        } else {
            format!("{key}.{field}")
        };
        return ComposeError::UnknownKey {
            at: Location::new(file, section, path),
        };
    }
    ComposeError::Invalid {
        at: Location::new(file, section, key),
        message: message.to_owned(),
    }
}
