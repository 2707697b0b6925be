//! The guest initramfs: `/init` = the static `vmrun-agent`, `/bin/vmrun-shim`, `dev/console`
//! and the mount points the agent uses, written with `vmrun-initramfs`'s [`CpioWriter`].
//!
//! Cached by content: `<cache>/initramfs/<hash>/initramfs.cpio`, the hash covering both
//! binaries and this layout, so building twice returns the same file without writing.
//! The archive is uncompressed (the kernel unpacks it as is; a gzip pass would cost more
//! boot time under TCG than the copy it saves).

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vmrun_initramfs::{CpioError, CpioWriter};

/// Bump when the layout below changes (it is part of the cache key).
const LAYOUT_VERSION: &str = "vmrun agent initramfs v1";

/// Directories created empty (mount points and the agent's working places).
const DIRS: &[&str] = &["dev", "proc", "sys", "run", "tmp", "bin"];

/// Errors building the initramfs.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// A binary is missing or unreadable.
    #[error("{context}: {source}")]
    Io {
        /// What was done.
        context: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the archive failed.
    #[error(transparent)]
    Cpio(#[from] CpioError),
    /// No cache directory could be found.
    #[error("no cache directory: set XDG_CACHE_HOME or HOME")]
    NoCache,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InitramfsError {
    let context = context.into();
    move |source| InitramfsError::Io { context, source }
}

/// `$XDG_CACHE_HOME/vmrun` or `~/.cache/vmrun`.
pub fn default_cache_root() -> Result<PathBuf, InitramfsError> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("vmrun"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cache/vmrun"))
        .ok_or(InitramfsError::NoCache)
}

fn hash_file(h: &mut Sha256, path: &Path) -> Result<(), InitramfsError> {
    let ctx = format!("reading {}", path.display());
    let mut f = std::fs::File::open(path).map_err(io(ctx.clone()))?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io(ctx.clone()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.update(b"\0");
    Ok(())
}

/// The cache key of an initramfs made of these binaries.
pub fn content_hash(agent: &Path, shim: &Path) -> Result<String, InitramfsError> {
    let mut h = Sha256::new();
    h.update(LAYOUT_VERSION.as_bytes());
    hash_file(&mut h, agent)?;
    hash_file(&mut h, shim)?;
    Ok(hex::encode(&h.finalize()[..8]))
}

/// Writes the archive to `out` (no caching).
pub fn write_initramfs(agent: &Path, shim: &Path, out: &Path) -> Result<(), InitramfsError> {
    let mut cpio = CpioWriter::create(out)?;
    for d in DIRS {
        cpio.dir(d, 0o755)?;
    }
    cpio.char_device("dev/console", 0o600, 5, 1)?;
    cpio.char_device("dev/null", 0o666, 1, 3)?;
    cpio.file_from("init", 0o755, agent)?;
    cpio.file_from("bin/vmrun-shim", 0o755, shim)?;
    cpio.finish()?;
    Ok(())
}

/// Builds (or finds) the initramfs for these static binaries under `cache_root`
/// (`None`: [`default_cache_root`]) and returns its path.
pub fn build(
    agent: &Path,
    shim: &Path,
    cache_root: Option<&Path>,
) -> Result<PathBuf, InitramfsError> {
    let root = match cache_root {
        Some(r) => r.to_owned(),
        None => default_cache_root()?,
    };
    let dir = root.join("initramfs").join(content_hash(agent, shim)?);
    let path = dir.join("initramfs.cpio");
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    // Written under a private name, then renamed: concurrent builders never see half a file.
    let tmp = dir.join(format!(".initramfs.cpio.{}", std::process::id()));
    let written = write_initramfs(agent, shim, &tmp);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path).map_err(io(format!("renaming to {}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_by_content() {
        let tmp = tempfile::tempdir().unwrap();
        let (agent, shim) = (tmp.path().join("agent"), tmp.path().join("shim"));
        std::fs::write(&agent, b"agent v1").unwrap();
        std::fs::write(&shim, b"shim v1").unwrap();
        let cache = tmp.path().join("cache");
        let first = build(&agent, &shim, Some(&cache)).unwrap();
        let mtime = std::fs::metadata(&first).unwrap().modified().unwrap();
        let again = build(&agent, &shim, Some(&cache)).unwrap();
        assert_eq!(first, again);
        assert_eq!(
            std::fs::metadata(&again).unwrap().modified().unwrap(),
            mtime
        );
        let bytes = std::fs::read(&first).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for name in [
            "init",
            "bin/vmrun-shim",
            "dev/console",
            "agent v1",
            "TRAILER!!!",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
        std::fs::write(&agent, b"agent v2").unwrap();
        let changed = build(&agent, &shim, Some(&cache)).unwrap();
        assert_ne!(changed, first);
        let e = build(&tmp.path().join("nope"), &shim, Some(&cache)).unwrap_err();
        assert!(e.to_string().contains("nope"));
    }
}
