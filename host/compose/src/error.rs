//! [`ComposeError`]: what can be wrong with a project, each naming where (the file, the
//! service and the key) so that one message tells the user what to fix.

use std::fmt;
use std::path::PathBuf;

/// Where in the compose files a problem is: the file, the service (or another
/// top-level section's entry) and the key path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or `a.yml + b.yml` for a merged value).
    pub file: String,
    /// `services.web`, `volumes.data`, or empty for the top level.
    pub section: String,
    /// The key inside it (`ports`, `healthcheck.interval`), or empty.
    pub key: String,
}

impl Location {
    /// A location in `file` at `section` and `key`.
    pub fn new(
        file: impl Into<String>,
        section: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Location {
            file: file.into(),
            section: section.into(),
            key: key.into(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(service) = self.section.strip_prefix("services.") {
            write!(f, ": service \"{service}\"")?;
        } else if !self.section.is_empty() {
            write!(f, ": {}", self.section)?;
        }
        if !self.key.is_empty() {
            write!(f, ": key \"{}\"", self.key)?;
        }
        Ok(())
    }
}

/// Everything that stops a project from loading. Nothing is created before a project
/// loaded without one of these.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// No compose file in the directory or its parents.
    #[error("no compose file found in {dir} or its parents (looked for {names})")]
    NoFile {
        /// Where the search began.
        dir: PathBuf,
        /// The names looked for.
        names: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML, or YAML that is not a mapping.
    #[error("{file}: invalid YAML: {message}")]
    Yaml {
        /// The file.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A key the Compose Specification does not have (or vmrun does not support).
    #[error("{at}: unknown key")]
    UnknownKey {
        /// Where.
        at: Location,
    },
    /// A value of the wrong type or form.
    #[error("{at}: {message}")]
    Invalid {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// `${VAR:?message}` with VAR unset or empty (`${VAR?message}`: unset).
    #[error("{at}: required variable {variable} is missing a value: {message}")]
    MissingVariable {
        /// Where the reference is.
        at: Location,
        /// The variable.
        variable: String,
        /// The message the file gave.
        message: String,
    },
    /// A `${` without its `}` or with an invalid name.
    #[error("{at}: invalid interpolation format in {text:?}")]
    BadInterpolation {
        /// Where.
        at: Location,
        /// The string.
        text: String,
    },
    /// `depends_on`, `extends` or a volume/network naming something that does not exist.
    #[error("{at}: {message}")]
    Reference {
        /// Where the reference is.
        at: Location,
        /// What it names and why that fails.
        message: String,
    },
    /// A cycle through `depends_on` (or `extends`).
    #[error("{file}: dependency cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The files.
        file: String,
        /// The services on the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// A service named on the command line that the project does not have.
    #[error("no such service: {0}")]
    NoSuchService(String),
}

/// Results of this crate.
pub type Result<T, E = ComposeError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_file_service_and_key() {
        let at = Location::new("compose.yaml", "services.web", "ports");
        assert_eq!(
            at.to_string(),
            "compose.yaml: service \"web\": key \"ports\""
        );
        let at = Location::new("compose.yaml", "volumes.data", "");
        assert_eq!(at.to_string(), "compose.yaml: volumes.data");
        let at = Location::new("compose.yaml", "", "servics");
        assert_eq!(
            ComposeError::UnknownKey { at }.to_string(),
            "compose.yaml: key \"servics\": unknown key"
        );
    }
}
