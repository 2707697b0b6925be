//! The Compose Specification model of `vmrun compose`. [`load_project`] finds the files
//! (`compose.yaml`, `docker-compose.yml`, ... or the `-f` list), reads the `.env` file,
//! interpolates `${VAR}`, `${VAR:-default}` and `${VAR:?error}`, checks every file on its
//! own (unknown keys and wrong types name the file, the service and the key), merges the
//! files, resolves `extends`, normalizes each service (long syntax, absolute paths,
//! `env_file` read), applies `profiles`, and checks references and `depends_on` cycles, so
//! that a bad project is refused before anything is created. [`start_order`] gives the
//! order services start in and [`config_hash`] the hash that tells whether a container
//! still matches its service. The names and labels are docker compose's (see [`model`]).
//!
//! The crate knows nothing of the engine: `vmrun compose` (host/cli) drives the daemon
//! through the Docker API with what it returns.

pub mod error;
pub mod hash;
pub mod interpolate;
pub mod merge;
pub mod model;
pub mod normalize;
pub mod order;
pub mod project;
pub mod raw;
pub mod source;

pub use error::{ComposeError, Location};
pub use hash::config_hash;
pub use model::{Project, Service};
pub use order::{start_order, with_dependencies};
pub use project::{load_project, LoadOptions};
