//! Typed errors of the networking library.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while managing container networks.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No network has this name or id (prefix).
    #[error("network {0} not found")]
    NotFound(String),
    /// A network with this name already exists.
    #[error("network with name {0} already exists")]
    AlreadyExists(String),
    /// An id prefix matches more than one network.
    #[error("network id prefix {0} is ambiguous")]
    Ambiguous(String),
    /// The network still has endpoints attached.
    #[error("network {network} has active endpoints: {endpoints:?}")]
    InUse {
        /// Name of the network.
        network: String,
        /// Container ids still attached.
        endpoints: Vec<String>,
    },
    /// The predefined networks ("bridge", "host", "none") cannot be removed or re-created.
    #[error("{0} is a pre-defined network and cannot be removed or re-created")]
    Predefined(String),
    /// The container already has an endpoint.
    #[error("container {0} is already attached to a network")]
    AlreadyAttached(String),
    /// The container already has an endpoint on this network.
    #[error("endpoint with name {container} already exists in network {network}")]
    AlreadyConnected {
        /// The container's name.
        container: String,
        /// The network's name.
        network: String,
    },
    /// The container has no endpoint on this network.
    #[error("container {container} is not connected to network {network}")]
    NotConnected {
        /// The container's id or name.
        container: String,
        /// The network's name.
        network: String,
    },
    /// The container has no network namespace to connect (it is not running, or it
    /// shares the host's).
    #[error("container {0} has no network namespace of its own to connect")]
    NoNamespace(String),
    /// A caller-provided value is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A requested subnet overlaps another network.
    #[error("subnet {subnet} overlaps {other}")]
    SubnetOverlap {
        /// Requested subnet.
        subnet: ipnet::Ipv4Net,
        /// What it overlaps (a network name or a host route).
        other: String,
    },
    /// Every candidate subnet is already in use on the host.
    #[error("no free subnet left in the candidate pools")]
    NoSubnetAvailable,
    /// The network's subnet has no free address left.
    #[error("no free IP address left in network {0}")]
    AddressExhausted(String),
    /// A netlink request failed.
    #[error("netlink {op}: {source}")]
    Netlink {
        /// What was attempted.
        op: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// Creating, entering or removing a network namespace failed.
    #[error("network namespace {path}: {op}: {source}")]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// What was attempted.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An iptables invocation failed.
    #[error("iptables {args}: {stderr}")]
    Iptables {
        /// The arguments given.
        args: String,
        /// What iptables printed.
        stderr: String,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was attempted, on which path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The persisted state could not be (de)serialised.
    #[error("network state {path}: {source}")]
    State {
        /// The state file.
        path: PathBuf,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl NetworkError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        NetworkError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn netlink(op: impl Into<String>, source: io::Error) -> Self {
        NetworkError::Netlink {
            op: op.into(),
            source,
        }
    }
}
