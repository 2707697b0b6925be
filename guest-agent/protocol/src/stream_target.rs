//! What a stream connection carries ([`StreamTarget`], named by [`crate::Op::OpenStream`]):
//! stdio, logs, forwards, shares, file operations on containers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::RootfsSpec;

/// What an [`Op::OpenStream`] connection carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamTarget {
    /// A container's or exec's stdio, as `vmrun-shim` serves it: raw bytes with a
    /// terminal, else docker's multiplexed framing (8-byte headers); bytes written to the
    /// connection go to stdin when `stdin` is set. Ends when the process's output ends.
    Attach {
        /// Container or exec id.
        id: String,
        /// Forward input to the process.
        stdin: bool,
        /// Send stdout.
        stdout: bool,
        /// Send stderr.
        stderr: bool,
    },
    /// A file to store under [`crate::DATA_DIR`]: after [`Reply::StreamReady`] the host
    /// sends exactly `size` bytes; the agent writes them under a temporary name, syncs,
    /// renames the file to `path` (parents made) and answers one line, `ok\n` or
    /// `error: <why>\n`, then closes. A short stream leaves nothing behind.
    PutFile {
        /// Relative to [`crate::DATA_DIR`]; plain names only (no `..`, not absolute).
        path: PathBuf,
        /// Exact length in bytes.
        size: u64,
    },
    /// A connection to port `port` inside container `id`'s network namespace (its
    /// loopback, or its `::1` when nothing listens on `127.0.0.1`): a published port's
    /// TCP connection or one UDP client's flow, framed as [`crate::forward`] says. The
    /// agent answers `StreamReady` once it has connected (TCP) or made the socket (UDP),
    /// an error (`not_found`, `io`) otherwise. Bytes (TCP) or datagrams (UDP) go one way
    /// on each of two connections: this one carries the host's to the container, and the
    /// container's come back on the [`StreamTarget::ForwardReturn`] connection the host
    /// opens at the same time with the same `return_token` (either may arrive first) (a vsock connection saturated both ways
    /// can stall for good in `vhost-device-vsock`'s credit accounting; one direction each
    /// does not).
    Forward {
        /// Container id.
        id: String,
        /// Port in the container.
        port: u16,
        /// TCP or UDP.
        protocol: ForwardProtocol,
        /// Names the return connection (a random number the host chose); required.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        return_token: Option<u64>,
    },
    /// The container-to-host half of the [`StreamTarget::Forward`] opened with
    /// `token`; the host only reads it. It closes if that forward does not come within
    /// 30 seconds or fails.
    ForwardReturn {
        /// The forward's `return_token`.
        token: u64,
    },
    /// The ports container `id` serves on (any address, IPv4 or IPv6: TCP listeners, and
    /// UDP sockets bound and not connected outside the ephemeral port range), as they
    /// change: one JSON line now, `{"tcp":[80,8080],"udp":[53]}`, and one more each time
    /// the sets change (`{"error":"..."}` if watching fails), until the container exits.
    /// The host forwards them (automatic port forwarding, `-P` on a VM container).
    Listeners {
        /// Container id.
        id: String,
    },
    /// A directory under [`crate::DATA_DIR`] as an uncompressed tar in overlayfs form
    /// (whiteouts as 0:0 character devices, `trusted.overlay.opaque` and
    /// `security.capability` as `SCHILY.xattr.*` PAX records): a container's upper
    /// directory for `commit`, `diff` and build steps. After the archive comes
    /// [`crate::DATA_TAR_END`]; a stream that ends without it failed.
    DataTar {
        /// Relative to [`crate::DATA_DIR`]; plain names only (no `..`, not absolute).
        path: PathBuf,
    },
    /// `docker cp` out of container `id` (and its stat, `HEAD /archive`): `path` resolved
    /// inside the container's root as dockerd resolves it (symlinks and `..` never leave
    /// the root; the last component not followed). The agent answers an error when the
    /// path does not resolve (`not_found` for a missing file), else `StreamReady`, one JSON
    /// line of docker's path stat (`name`, `size`, `mode`, `mtime`, `linkTarget`) and,
    /// unless `stat_only`, the tar `docker cp` sends followed by [`crate::DATA_TAR_END`];
    /// then it closes. Its root is the running container's, volumes and binds included, or
    /// with `stopped` the overlay of those layers, mounted for this stream only.
    Archive {
        /// Container id.
        id: String,
        /// Absolute path in the container.
        path: String,
        /// The stopped container's root file system.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped: Option<RootfsSpec>,
        /// With `stopped`: its volumes and binds, mounted over that root for the stream.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        stopped_mounts: Vec<StoppedMount>,
        /// Send the stat line alone.
        #[serde(default)]
        stat_only: bool,
    },
    /// `docker cp` into container `id`: after `StreamReady` the host sends a tar in the
    /// chunks of [`crate::forward`] (a zero-length chunk ends it); the agent extracts it into
    /// directory `path` (resolved inside the root as for [`StreamTarget::Archive`]; entries
    /// leaving it refused), reads the input to its end and answers one JSON line,
    /// `{"Ok":null}` or `{"Err":<AgentError>}` (`not_found`: no such directory;
    /// `bad_request`: not a directory, a bad archive, a read-only volume), then closes.
    Extract {
        /// Container id.
        id: String,
        /// Absolute path of a directory in the container.
        path: String,
        /// The stopped container's root file system.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped: Option<RootfsSpec>,
        /// With `stopped`: its volumes and binds, mounted over that root for the stream
        /// (a read-only one refuses the files written into it).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        stopped_mounts: Vec<StoppedMount>,
        /// Refuse to replace a directory by a non-directory or the reverse.
        #[serde(default)]
        no_overwrite_dir_non_dir: bool,
        /// Own the files by `user` (looked up in the container) instead of the archive's
        /// owners.
        #[serde(default)]
        copy_uid_gid: bool,
        /// The container's user, docker's form.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// `docker export` of container `id`: `StreamReady`, a tar of its root file system (the
    /// overlay alone, not its volumes or binds) and [`crate::DATA_TAR_END`]; `stopped` as
    /// for [`StreamTarget::Archive`].
    Export {
        /// Container id.
        id: String,
        /// The stopped container's root file system.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped: Option<RootfsSpec>,
    },
    /// A host directory shared into the guest (`-v /host/dir:/ctr/dir`): the agent mounts
    /// a FUSE file system at [`crate::share_path`]`(id)` (read-only with `read_only`) and
    /// answers `StreamReady`; from then on this connection carries the host's FUSE replies
    /// and notifications to the guest kernel, and the kernel's requests go back on the
    /// [`StreamTarget::ForwardReturn`] connection with `return_token`: raw FUSE messages,
    /// each starting with its own length (a little-endian `u32`, as in `fuse_in_header`
    /// and `fuse_out_header`). The file system server is on the host. The mount goes away
    /// (lazily) when the host closes this connection.
    Share {
        /// The share's name (a plain id, see [`crate::valid_id`]).
        id: String,
        /// Mount read-only in the guest too (the host refuses changes anyway).
        read_only: bool,
        /// Names the return connection.
        return_token: u64,
    },
    /// Container `id`'s network: the agent makes `eth0`, a TAP device, in the
    /// container's network namespace, addresses it as `network` says with a default route
    /// through its gateway, and answers `StreamReady` once it is up. Frames (see
    /// [`crate::network`]) for the container come on this connection; the container's go
    /// back on the [`StreamTarget::ForwardReturn`] connection with `return_token` (one
    /// direction per connection, as for [`StreamTarget::Forward`]). `eth0` goes away when
    /// the host closes this connection.
    Network {
        /// Container id.
        id: String,
        /// How `eth0` is set up.
        network: crate::network::GuestNetwork,
        /// Names the return connection.
        return_token: u64,
    },
    /// The container's json-file log lines as stored (one JSON object per line, with
    /// timestamps); with `follow`, new lines as they come until the container has exited.
    Logs {
        /// Container id.
        id: String,
        /// Keep sending.
        follow: bool,
    },
}

/// The transport of a [`StreamTarget::Forward`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardProtocol {
    /// A byte stream with half-closes.
    Tcp,
    /// Datagrams.
    Udp,
}

/// A volume or bind of a stopped container, as `docker cp` sees it: guest directory
/// `source` (a share or a directory on the data disk) bound at `destination`, resolved
/// inside the container's root, for one file stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedMount {
    /// The directory in the guest.
    pub source: PathBuf,
    /// Absolute path in the container.
    pub destination: String,
    /// Bound read-only.
    #[serde(default)]
    pub read_only: bool,
}
