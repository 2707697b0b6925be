//! The protocol between the host (the daemon's VM backend, tests) and `vmrun-agent`, the
//! guest's PID 1: wire types and framing, shared by both sides. It depends on nothing else
//! of ours, so the guest and the host each build it alone.
//!
//! # Transport
//! The agent listens on vsock port [`AGENT_PORT`] (1024) in the guest; the host reaches it
//! through the VM's hybrid-vsock Unix socket (`CONNECT 1024\n` → `OK <n>\n`, see
//! `vmrun_vm::hybrid_vsock`). For tests the agent runs on the host with
//! `--listen unix:PATH`; the bytes are the same.
//!
//! # Framing
//! Every message is one frame: a `u32` big-endian body length, then a JSON body
//! ([`frame`]). Bodies over [`MAX_FRAME_LEN`] (1 MiB) are refused: the agent answers a
//! [`Response`] with `id: None` and [`ErrorKind::TooLarge`], throws the body away when its
//! declared length is at most [`frame::MAX_SKIP_LEN`] and keeps reading; a longer
//! declaration (garbage) ends that connection after the error reply. A frame that is not
//! valid JSON for the expected type gets [`ErrorKind::BadRequest`] and the connection goes
//! on. No input makes the agent stop serving other connections.
//!
//! # Connections
//! 1. The client sends [`Hello`] with its [`PROTOCOL_VERSION`] (and, optionally, the host's
//!    clock); the agent answers [`HelloReply::Welcome`] or, on a version mismatch,
//!    [`HelloReply::Refused`] naming both versions, and closes. [`check_welcome`] turns the
//!    reply into a typed [`VersionError`] on the client side.
//! 2. Control connection: any number of [`Request`]s (`{id, op}`), answered by
//!    [`Response`]s with the same `id`, possibly out of order: a `Wait` may stay
//!    unanswered for hours while other requests complete.
//! 3. Stream connection: the first request is [`Op::OpenStream`] with a [`StreamTarget`];
//!    after [`Reply::StreamReady`] the connection carries raw bytes (attach stdio, exec I/O,
//!    log follow). Every stream is its own connection, so a slow reader never blocks the
//!    control connection or another stream.
//!
//! # Operations
//! `ping`, `version`, `set_time` (applied when off by more than [`CLOCK_SLACK_MS`]),
//! `shutdown` (sync, unmount, reboot: the VM ends), `mount_layer` (read-only ext4 layer disk
//! at [`layer_path`]), `mount_data_disk` (at [`DATA_DIR`]), `create` (OCI spec + overlay of
//! layer dirs + writable dir, user, tty, stdin, log path), `exec`, `start`, `wait`, `kill`,
//! `resize`, `delete`, `logs`, `stats` (cgroup figures), `top`, `list`, `remove_data`,
//! `connect_network`/`disconnect_network` (a container's veth on a user network's bridge
//! in the guest), `write_hosts` (a container's `/etc/hosts` rewritten in place),
//! `make_data_dir`, `fill_data_dir` (an empty volume on the data disk given the image's
//! content at its mount point), `list_data`, `remove_layer`,
//! `open_stream` (attach, logs, put_file: a file stored on the data disk, forward: a
//! published port's connection into a container, see [`forward`]; listeners: the ports a
//! container listens on, as they change; network: a container's Ethernet frames, see
//! [`network`]).
//!
//! ```text
//! → [len]{"version":7,"client":"vmrund","host_time_unix_nanos":1764855000000000000}
//! ← [len]{"type":"welcome","version":7,"agent":"vmrun-agent 0.1.0","kernel_release":"6.1.0",...}
//! → [len]{"id":7,"op":{"type":"start","id":"c1"}}
//! ← [len]{"id":7,"result":{"Ok":{"type":"started","pid":42}}}
//! ```

mod fill;
#[cfg(feature = "tokio")]
pub mod forward;
pub mod frame;
mod messages;
pub mod network;
mod stream_target;

pub use fill::FillDataDir;
pub use frame::{FrameError, MAX_FRAME_LEN};
pub use messages::*;
pub use stream_target::{ForwardProtocol, StoppedMount, StreamTarget};

/// The version this build speaks. Bump on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 8;

/// The agent's vsock port in the guest.
pub const AGENT_PORT: u32 = 1024;

/// The guest clock is set only when it is off by more than this (as Lima does).
pub const CLOCK_SLACK_MS: i64 = 100;

/// Where [`Op::MountLayer`] mounts layers: `LAYERS_DIR/<id>`.
pub const LAYERS_DIR: &str = "/run/vmrun/layers";

/// Where [`Op::MountDataDisk`] mounts the data disk.
pub const DATA_DIR: &str = "/run/vmrun/data";

/// What follows a complete [`StreamTarget::DataTar`] archive (a tar reader cannot tell a
/// truncated archive that ends between entries from a whole one).
pub const DATA_TAR_END: &[u8] = b"\nvmrun: end of archive\n";

/// Where [`StreamTarget::Share`] mounts host directories.
pub const SHARES_DIR: &str = "/run/vmrun/shares";

/// The guest path of share `id` ([`StreamTarget::Share`]).
pub fn share_path(id: &str) -> std::path::PathBuf {
    std::path::Path::new(SHARES_DIR).join(id)
}

/// The guest path of a mounted layer.
pub fn layer_path(id: &str) -> std::path::PathBuf {
    std::path::Path::new(LAYERS_DIR).join(id)
}

/// Whether `id` is a usable container, exec or layer id: 1–128 characters of
/// `[A-Za-z0-9_.-]`, not `.` or `..`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `path` under [`DATA_DIR`] when it is relative and made of plain names only (no `..`,
/// no `.`, no root): what [`Op::RemoveData`], [`Op::MakeDataDir`], [`Op::FillDataDir`] and
/// [`StreamTarget::PutFile`] accept.
pub fn data_path(path: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::path::Component;
    let plain = path.components().next().is_some()
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    // Rebuilt from the components: `a/./b` becomes `a/b`.
    plain.then(|| {
        std::path::Path::new(DATA_DIR).join(path.components().collect::<std::path::PathBuf>())
    })
}

/// A refused hello, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The agent speaks another version.
    #[error("protocol version mismatch: the agent speaks version {agent}, this client speaks version {client}: {message}")]
    Mismatch {
        /// The agent's version.
        agent: u32,
        /// Ours.
        client: u32,
        /// The agent's message.
        message: String,
    },
    /// The agent refused for another reason.
    #[error("the agent refused the connection: {0}")]
    Refused(String),
}

impl Hello {
    /// A hello for this build's version.
    pub fn new(client: impl Into<String>, host_time_unix_nanos: Option<i64>) -> Self {
        Hello {
            version: PROTOCOL_VERSION,
            client: client.into(),
            host_time_unix_nanos,
        }
    }
}

/// The agent's side of the version check: `Err(reply)` when the versions differ.
pub fn check_hello(hello: &Hello) -> Result<(), HelloReply> {
    if hello.version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(HelloReply::Refused {
            version: PROTOCOL_VERSION,
            message: format!(
                "protocol version mismatch: this agent speaks version {PROTOCOL_VERSION}, the client speaks version {}",
                hello.version
            ),
        })
    }
}

/// The client's side: accepts a welcome of our version.
pub fn check_welcome(reply: &HelloReply) -> Result<(), VersionError> {
    match reply {
        HelloReply::Welcome { version, .. } if *version == PROTOCOL_VERSION => Ok(()),
        HelloReply::Welcome { version, .. } => Err(VersionError::Mismatch {
            agent: *version,
            client: PROTOCOL_VERSION,
            message: "the agent welcomed another version".into(),
        }),
        HelloReply::Refused { version, message } if *version != PROTOCOL_VERSION => {
            Err(VersionError::Mismatch {
                agent: *version,
                client: PROTOCOL_VERSION,
                message: message.clone(),
            })
        }
        HelloReply::Refused { message, .. } => Err(VersionError::Refused(message.clone())),
    }
}

#[cfg(test)]
mod tests;
