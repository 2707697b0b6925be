//! The Dockerfile front end of `vmrun build` and the daemon's `POST /build`: the
//! Dockerfile [`parser`] (directives, comments, continuations) and its typed
//! [`instruction`]s grouped into stages, docker's variable substitution ([`shell`]),
//! `.dockerignore` matching ([`dockerignore`]) and the build context on disk
//! ([`context`]: unpacking, source resolution that never leaves the context, checksums
//! for the cache), and the client's side of it ([`pack`]: the context tar that `vmrun
//! build` sends). It runs nothing: executing the steps is the daemon's job.

pub mod context;
pub mod dockerignore;
mod error;
pub mod heredoc;
pub mod instruction;
pub mod pack;
pub mod parser;
pub mod shell;

pub use context::ContextDir;
pub use dockerignore::DockerIgnore;
pub use error::BuildFileError;
pub use heredoc::Heredoc;
pub use instruction::{
    parse_go_duration, Command, CopyArgs, Dockerfile, Healthcheck, Instruction, Stage, Step,
};
pub use pack::pack_context;
pub use shell::{expand_word, expand_words, Vars};
