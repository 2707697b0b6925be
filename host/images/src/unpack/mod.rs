//! Safe unpacking of one layer tar into its own directory, in overlayfs form.
//!
//! Handles regular files, directories, symlinks, hard links (inside the layer
//! directory), FIFOs, device nodes (only as root), modes, ownership (as root),
//! mtimes, xattrs (`SCHILY.xattr.*` PAX records), and OCI whiteouts, which are
//! kept in overlayfs form because layers are stacked with overlayfs:
//! `.wh.NAME` becomes a 0:0 character device `NAME`, and `.wh..wh..opq` sets
//! `trusted.overlay.opaque=y` on its directory.
//!
//! Entries with `..` components or absolute paths, hard links whose target is
//! absolute or has `..`, and any path whose parent resolves outside the layer
//! directory (through a symlink) are refused with [`UnpackError::UnsafeEntry`]
//! naming the entry; see [`beneath`] for how resolution is confined.

mod beneath;
mod entry;

use std::io::{self, Read};
use std::path::Path;

pub use beneath::Resolver;

use beneath::Beneath;
use entry::EntryWriter;

/// What went wrong while unpacking a layer.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The tar stream itself could not be read (truncated, corrupt, bad compression).
    #[error("reading the layer tar: {0}")]
    Read(#[source] io::Error),
    /// An entry would write outside the layer directory or is otherwise unsafe.
    #[error("unsafe entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as written in the tar.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// Writing an entry failed.
    #[error("entry {entry:?}: {source}")]
    Io {
        /// The entry's path as written in the tar.
        entry: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An entry type this unpacker does not handle.
    #[error("entry {entry:?}: unsupported entry type {kind:?}")]
    Unsupported {
        /// The entry's path.
        entry: String,
        /// The tar type flag.
        kind: char,
    },
}

/// How to unpack.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnpackOptions {
    /// How parent directories are resolved.
    pub resolver: Resolver,
}

/// What an unpack produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Entries processed.
    pub entries: u64,
    /// Bytes of regular-file content written (the layer's unpacked size).
    pub bytes: u64,
}

/// Unpacks the (uncompressed) layer tar `reader` into the existing directory `dest`.
///
/// Reads up to the tar's end-of-archive marker; the caller drains whatever
/// follows (padding) if it hashes the stream.
pub fn unpack_layer<R: Read>(
    reader: R,
    dest: &Path,
    options: UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let root = Beneath::open(dest, options.resolver).map_err(|source| UnpackError::Io {
        entry: ".".to_owned(),
        source,
    })?;
    let mut writer = EntryWriter::new(&root, rustix::process::geteuid().is_root());
    let mut archive = tar::Archive::new(reader);
    let mut stats = UnpackStats::default();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        stats.bytes += writer.write(&mut entry)?;
        stats.entries += 1;
    }
    writer.finish()?;
    Ok(stats)
}

/// Splits an archive path into its components, dropping `.` and empty ones.
/// Refuses absolute paths and `..` components.
pub(crate) fn clean_components(raw: &[u8]) -> Result<Vec<&[u8]>, String> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path".to_owned());
    }
    let mut out = Vec::new();
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("path has a '..' component".to_owned()),
            c if c.contains(&0) => return Err("path has a NUL byte".to_owned()),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
