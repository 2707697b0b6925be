//! A directory on the data disk as a tar stream ([`StreamTarget::DataTar`]): a container's
//! overlayfs upper directory, for `commit`, `diff` and build steps on the host.
//!
//! The tar keeps the overlayfs form as it is on disk: whiteouts stay 0:0 character
//! devices, and the xattrs overlayfs and images use (`trusted.overlay.opaque`,
//! `security.capability`) go as `SCHILY.xattr.*` PAX records, which the host's layer
//! unpacker reads back into the same form. Symlinks are stored, never followed; hard links
//! are stored as separate files.
//!
//! [`StreamTarget::DataTar`]: vmrun_agent_protocol::StreamTarget::DataTar

use std::ffi::CString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The xattrs carried over.
const XATTRS: [&str; 2] = ["trusted.overlay.opaque", "security.capability"];

/// Sends the tar of `dir` to `host`, then closes; an error ends the stream early (the host
/// sees a truncated archive and fails).
pub async fn send<S>(host: &mut S, dir: PathBuf)
where
    S: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    let builder = tokio::task::spawn_blocking(move || write_tar(&dir, ChannelWriter(tx)));
    while let Some(chunk) = rx.recv().await {
        if host.write_all(&chunk).await.is_err() {
            return;
        }
    }
    match builder.await {
        Ok(Ok(())) => {
            let _ = host.shutdown().await;
        }
        Ok(Err(e)) => tracing::warn!("archiving a data directory: {e}"),
        Err(e) => tracing::warn!("archiving a data directory: {e}"),
    }
}

/// `Write` into a channel, in the chunks tar writes.
pub(crate) struct ChannelWriter(pub(crate) mpsc::Sender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(buf.to_vec())
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn write_tar<W: Write>(dir: &Path, out: W) -> io::Result<()> {
    let mut builder = tar::Builder::new(io::BufWriter::with_capacity(256 * 1024, out));
    builder.mode(tar::HeaderMode::Complete);
    builder.follow_symlinks(false);
    add_tree(&mut builder, dir, Path::new(""))?;
    let mut out = builder.into_inner()?;
    out.write_all(vmrun_agent_protocol::DATA_TAR_END)?;
    out.flush()
}

/// Adds `root/rel` and, for a directory, everything under it (sorted, for stable output).
fn add_tree<W: Write>(b: &mut tar::Builder<W>, root: &Path, rel: &Path) -> io::Result<()> {
    let full = root.join(rel);
    let meta = std::fs::symlink_metadata(&full)?;
    if !rel.as_os_str().is_empty() {
        let pax: Vec<(String, Vec<u8>)> = XATTRS
            .iter()
            .filter_map(|name| xattr(&full, name).map(|v| (format!("SCHILY.xattr.{name}"), v)))
            .collect();
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        append_entry(b, &full, rel, &meta)?;
    }
    if meta.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(&full)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            add_tree(b, root, &rel.join(name))?;
        }
    }
    Ok(())
}

/// One entry. Device nodes and FIFOs get their header here: `tar` 0.4's
/// `append_path_with_name` names them by their full path instead of `rel`.
fn append_entry<W: Write>(
    b: &mut tar::Builder<W>,
    full: &Path,
    rel: &Path,
    meta: &std::fs::Metadata,
) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        tar::EntryType::Char
    } else if ft.is_block_device() {
        tar::EntryType::Block
    } else if ft.is_fifo() {
        tar::EntryType::Fifo
    } else if ft.is_socket() {
        // Sockets cannot be archived (as tar and docker skip them).
        return Ok(());
    } else {
        return b.append_path_with_name(full, rel);
    };
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h.set_entry_type(kind);
    h.set_size(0);
    let rdev = meta.rdev();
    h.set_device_major(nix::sys::stat::major(rdev) as u32)?;
    h.set_device_minor(nix::sys::stat::minor(rdev) as u32)?;
    b.append_data(&mut h, rel, io::empty())
}

/// Extended attribute `name` of `path` (not following a symlink), if set.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let c_name = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and live across the call; `buf` is writable
    // for the length passed.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_files_links_modes_and_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("etc/sub")).unwrap();
        std::fs::write(d.join("etc/new.conf"), b"x=1\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.join("etc/new.conf"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let root = nix::unistd::geteuid().is_root();
        if root {
            nix::sys::stat::mknod(
                &d.join("gone"),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                0,
            )
            .unwrap();
        }
        let mut out = Vec::new();
        write_tar(d, &mut out).unwrap();
        let mut archive = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            seen.push((
                path,
                e.header().entry_type(),
                e.header().mode().unwrap() & 0o7777,
            ));
        }
        let find = |p: &str| {
            seen.iter()
                .find(|s| s.0.trim_end_matches('/') == p)
                .cloned()
        };
        assert_eq!(find("etc/new.conf").map(|s| s.2), Some(0o640), "{seen:?}");
        assert_eq!(find("link").map(|s| s.1), Some(tar::EntryType::Symlink));
        assert!(find("etc/sub").is_some_and(|s| s.1 == tar::EntryType::Directory));
        if root {
            assert_eq!(find("gone").map(|s| s.1), Some(tar::EntryType::Char));
        }
    }
}
