//! [`crate::Op::FillDataDir`]: a volume on the data disk that starts with what its
//! container's image has at its mount point, as dockerd fills a new volume.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Fill the directory `path` under [`crate::DATA_DIR`] (a volume's data), when it is
/// empty, with the content the image of `layers` has at `destination`: owners, modes and
/// symlinks kept, the layers' whiteouts and opaque directories applied. A `destination`
/// that is not a directory in the image, or that passes through a symlink there, leaves
/// the volume as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillDataDir {
    /// Relative to [`crate::DATA_DIR`]; plain names only (no `..`, not absolute).
    pub path: PathBuf,
    /// The image's layer directories in the guest (mounted layers), bottom-most first.
    pub layers: Vec<PathBuf>,
    /// The volume's mount point in the container (an absolute path).
    pub destination: String,
}
