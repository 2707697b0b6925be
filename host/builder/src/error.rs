//! [`BuildFileError`]: what the front end refuses, with the Dockerfile line where there is one.

use std::path::PathBuf;

/// An error of the Dockerfile front end.
#[derive(Debug, thiserror::Error)]
pub enum BuildFileError {
    /// The Dockerfile is malformed at `line` (1-based).
    #[error("Dockerfile parse error line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// The Dockerfile has no instruction at all.
    #[error("file with no instructions")]
    Empty,
    /// A variable reference could not be expanded (`${X:?msg}`, a bad `${...}`).
    #[error("failed to process {word:?}: {message}")]
    Substitution { word: String, message: String },
    /// A `.dockerignore` pattern is invalid.
    #[error("invalid .dockerignore pattern {pattern:?}: {message}")]
    IgnorePattern { pattern: String, message: String },
    /// A COPY/ADD source leads outside the build context.
    #[error("Forbidden path outside the build context: {path}")]
    OutsideContext { path: String },
    /// A COPY/ADD source is a symlink that leads outside the build context.
    #[error("Forbidden path outside the build context: {path} is a symlink to {target}, which is outside the context")]
    SymlinkOutsideContext { path: String, target: String },
    /// A COPY/ADD source matched nothing.
    #[error("COPY failed: file not found in build context or excluded by .dockerignore: stat {path}: file does not exist")]
    SourceNotFound { path: String },
    /// Reading the build context failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl BuildFileError {
    pub(crate) fn syntax(line: usize, message: impl Into<String>) -> Self {
        BuildFileError::Syntax {
            line,
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, what: &str, source: std::io::Error) -> Self {
        BuildFileError::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }
}

/// The display form of a context-relative path in messages.
pub(crate) fn shown(path: &std::path::Path) -> String {
    PathBuf::from(path).display().to_string()
}
