//! Files the host keeps on the guest's data disk ([`vmrun_agent_protocol::DATA_DIR`]):
//! stored whole from a stream ([`receive`], e.g. a layer's ext4 image) and removed
//! ([`remove`], e.g. a removed container's writable layer), and directories made
//! ([`make_dir`], a named volume's data) and filled from an image ([`fill`]).

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use vmrun_agent_protocol::{data_path, AgentError, ErrorKind, FillDataDir};

/// Where [`fill`] mounts the merged view of an image's layers for the copy.
const FILL_SCRATCH: &str = "/run/vmrun/fill";

/// The guest path of `relative` under the data directory, or a `BadRequest` naming it.
pub fn target(relative: &Path) -> Result<PathBuf, AgentError> {
    data_path(relative).ok_or_else(|| {
        AgentError::new(
            ErrorKind::BadRequest,
            format!(
                "{}: expected a relative path of plain names under the data disk",
                relative.display()
            ),
        )
    })
}

/// Removes a file or a whole tree under the data directory; nothing there is fine.
pub async fn remove(relative: &Path) -> Result<(), AgentError> {
    let path = target(relative)?;
    tokio::task::spawn_blocking(move || {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        // remove_dir_all does not follow symlinks inside the tree.
        if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
    })
    .await
    .map_err(|e| AgentError::new(ErrorKind::Internal, format!("removing: {e}")))?
    .map_err(|e| {
        AgentError::new(
            ErrorKind::Internal,
            format!("removing {}: {e}", relative.display()),
        )
    })
}

/// The names in a directory under the data directory, sorted; none when it is missing.
pub async fn list(relative: &Path) -> Result<Vec<String>, AgentError> {
    let path = target(relative)?;
    let failed = |e: std::io::Error| {
        AgentError::new(
            ErrorKind::Internal,
            format!("listing {}: {e}", relative.display()),
        )
    };
    let mut dir = match tokio::fs::read_dir(&path).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(e)),
    };
    let mut names = Vec::new();
    while let Some(entry) = dir.next_entry().await.map_err(failed)? {
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Makes a directory (and its parents) under the data directory.
pub async fn make_dir(relative: &Path) -> Result<(), AgentError> {
    let path = target(relative)?;
    tokio::fs::create_dir_all(&path).await.map_err(|e| {
        AgentError::new(
            ErrorKind::Internal,
            format!("making {}: {e}", relative.display()),
        )
    })
}

/// Fills the volume directory `req.path` under the data directory, when it is empty, with
/// what the image of `req.layers` (mounted layers, bottom first) has at `req.destination`
/// (`vmrun_containerfs::fill`, the daemon's own code for volumes on its host); whether
/// anything was copied.
pub async fn fill(req: FillDataDir) -> Result<bool, AgentError> {
    let volume = target(&req.path)?;
    if !req.destination.starts_with('/') || req.layers.iter().any(|l| !l.is_absolute()) {
        return Err(AgentError::new(
            ErrorKind::BadRequest,
            "filling a volume needs absolute layer paths and an absolute mount point",
        ));
    }
    if let Some(missing) = req.layers.iter().find(|l| !l.is_dir()) {
        return Err(AgentError::new(
            ErrorKind::NotFound,
            format!("layer {} is not mounted", missing.display()),
        ));
    }
    tokio::task::spawn_blocking(move || {
        vmrun_containerfs::fill::fill_from_image(
            &req.layers,
            &req.destination,
            &volume,
            Path::new(FILL_SCRATCH),
        )
    })
    .await
    .map_err(|e| AgentError::new(ErrorKind::Internal, format!("filling a volume: {e}")))?
    .map_err(|e| AgentError::new(ErrorKind::Internal, e.to_string()))
}

/// Stores exactly `size` bytes from `stream` at `target` (atomically: a temporary name,
/// fsync, rename) and answers `ok\n` or `error: <why>\n` on the stream.
pub async fn receive<S>(stream: &mut S, target: &Path, size: u64)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let answer = match store(stream, target, size).await {
        Ok(()) => {
            tracing::info!(path = %target.display(), size, "stored a file");
            "ok\n".to_string()
        }
        Err(e) => {
            tracing::warn!(path = %target.display(), "storing a file: {e}");
            format!("error: {e}\n")
        }
    };
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn store<S: AsyncRead + Unpin>(
    stream: &mut S,
    target: &Path,
    size: u64,
) -> std::io::Result<()> {
    let dir = target
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    tokio::fs::create_dir_all(dir).await?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.partial"));
    let result = async {
        let mut file = tokio::fs::File::create(&temp).await?;
        let copied = tokio::io::copy(&mut (&mut *stream).take(size), &mut file).await?;
        if copied != size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the stream ended after {copied} of {size} bytes"),
            ));
        }
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temp, target).await?;
        tokio::fs::File::open(dir).await?.sync_all().await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_short_stream_leaves_nothing_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("layers/a.ext4");
        let (mut host, mut guest) = tokio::io::duplex(1 << 16);
        host.write_all(b"abc").await.unwrap();
        host.shutdown().await.unwrap();
        receive(&mut guest, &target, 10).await;
        let mut answer = String::new();
        host.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("error: ") && answer.contains("3 of 10"),
            "{answer}"
        );
        assert!(!target.exists());
        let left: Vec<_> = std::fs::read_dir(target.parent().unwrap())
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn a_whole_stream_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b.bin");
        let (mut host, mut guest) = tokio::io::duplex(1 << 16);
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            host.write_all(&sent).await.unwrap();
            let mut answer = String::new();
            host.read_to_string(&mut answer).await.unwrap();
            answer
        });
        receive(&mut guest, &target, data.len() as u64).await;
        drop(guest);
        assert_eq!(writer.await.unwrap(), "ok\n");
        assert_eq!(std::fs::read(&target).unwrap(), data);
    }

    #[tokio::test]
    async fn a_fill_needs_plain_paths_and_mounted_layers() {
        let req = |path: &str, layer: &str, destination: &str| FillDataDir {
            path: path.into(),
            layers: vec![layer.into()],
            destination: destination.into(),
        };
        let e = fill(req("../v", "/", "/etc")).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        let e = fill(req("volumes/v/_data", "layer", "/etc"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        let e = fill(req("volumes/v/_data", "/", "etc")).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        let missing = "/run/vmrun/layers/no-such-layer-here";
        let e = fill(req("volumes/v/_data", missing, "/etc"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains(missing), "{}", e.message);
    }

    #[test]
    fn paths_outside_the_data_dir_are_refused() {
        let e = target(Path::new("../etc")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        assert!(e.message.contains("../etc"), "{}", e.message);
    }
}
