//! Local parsers for `run`/`create` options, applied before any API call,
//! like the docker CLI's `opts` package.

pub mod env;
pub mod filters;
pub mod health;
pub mod ports;
pub mod reference;
pub mod run_config;
pub mod size;
pub mod volumes;

/// A rejected option value: which flag, which value, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid argument \"{value}\" for \"{flag}\" flag: {reason}")]
pub struct OptError {
    /// The flag as docker spells it in its messages, e.g. `-p, --publish`.
    pub flag: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl OptError {
    /// Builds an error for `flag` and `value`.
    pub fn new(flag: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            flag,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
