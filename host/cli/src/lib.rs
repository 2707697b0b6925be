//! The `vmrun` command-line interface: a Docker-compatible client of the
//! vmrun daemon's Docker Engine API.
//!
//! The binary is a thin wrapper over [`run_cli`]; the modules are public so
//! that their parsers and formatters can be tested and reused (the GUI, for
//! example, may want the same human-readable sizes and times).

pub mod api;
pub mod attach;
pub mod cli;
pub mod commands;
pub mod daemon_launch;
pub mod error;
pub mod format;
pub mod opts;
pub mod progress;

pub use cli::run_cli;
pub use error::CliError;
