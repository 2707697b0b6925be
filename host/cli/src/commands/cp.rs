//! `vmrun cp`: files between a container and this host, as `docker cp` copies them.
//!
//! Out of a container: the daemon's tar of the path is written to STDOUT (`-`) or
//! extracted here: into an existing directory under the path's name, or as the
//! destination itself (the archive's top entry renamed); `SRC/.` copies what a
//! directory holds. Into a container: a tar of the local path (owners kept, symlinks not
//! followed unless `-L`) is sent to the destination directory, named as the
//! destination when that does not exist or is a file; `-` sends a tar read from STDIN.

use std::io::Read;
use std::path::{Path, PathBuf};

use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::Bytes;

use super::fail;
use crate::api::Api;
use crate::error::{CliError, CliResult};

/// Arguments of `cp`.
#[derive(Debug, Clone, clap::Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH|-
    pub src: String,
    /// DEST_PATH|- or CONTAINER:DEST_PATH
    pub dest: String,
}

/// Go's `os.ModeDir` and `os.ModeSymlink` in a path stat's mode.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;

/// `CONTAINER:PATH` split; `None` for a local path (one with a `/` before any `:`).
fn split_container(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

fn err(message: impl Into<String>) -> CliError {
    CliError::new(1, message)
}

/// `vmrun cp`.
pub async fn cp(api: &Api, args: &CpArgs) -> CliResult<i32> {
    match (split_container(&args.src), split_container(&args.dest)) {
        (Some(_), Some(_)) => Err(err("copying between containers is not supported")),
        (None, None) => Err(err("must specify at least one container source")),
        (Some((c, path)), None) => copy_out(api, args, c, path).await,
        (None, Some((c, path))) => copy_in(api, args, c, path).await,
    }
}

/// The stat the daemon sends with an archive (`X-Docker-Container-Path-Stat`).
#[derive(Debug, serde::Deserialize)]
struct PathStat {
    name: String,
    mode: u32,
    #[serde(rename = "linkTarget", default)]
    link_target: String,
}

/// `GET /containers/{c}/archive?path=`: the path's stat and its tar.
async fn download(api: &Api, container: &str, path: &str) -> CliResult<(PathStat, Vec<u8>)> {
    use base64::Engine as _;
    use http_body_util::BodyExt;
    let url = format!(
        "{}/containers/{}/archive?path={}",
        api.version_prefix(),
        crate::api::raw::encode(container),
        crate::api::raw::encode(path)
    );
    let res = crate::api::raw::request(&api.socket, hyper::Method::GET, &url, None)
        .await
        .map_err(fail)?;
    let stat = res
        .headers()
        .get("X-Docker-Container-Path-Stat")
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<PathStat>(&json).ok())
        .ok_or_else(|| err("the daemon sent no stat of the path"))?;
    let tar = res
        .into_body()
        .collect()
        .await
        .map_err(|e| err(format!("reading the archive: {e}")))?
        .to_bytes()
        .to_vec();
    Ok((stat, tar))
}

async fn copy_out(api: &Api, args: &CpArgs, container: &str, path: &str) -> CliResult<i32> {
    if path.is_empty() {
        return Err(err("empty source path"));
    }
    let mut src = path.to_string();
    let (mut stat, mut tar) = download(api, container, &src).await?;
    if args.follow_link && stat.mode & MODE_SYMLINK != 0 {
        src = stat.link_target.clone();
        (stat, tar) = download(api, container, &src).await?;
    }
    if args.dest == "-" {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&tar)
            .and_then(|()| out.flush())
            .map_err(|e| err(format!("writing to STDOUT: {e}")))?;
        return Ok(0);
    }
    let is_dir = stat.mode & MODE_DIR != 0;
    let contents_only = src.ends_with("/.");
    let dest = PathBuf::from(&args.dest);
    // Where the archive's top entry goes.
    let target = match std::fs::metadata(&dest) {
        Ok(m) if m.is_dir() && contents_only => dest.clone(),
        Ok(m) if m.is_dir() => dest.join(&stat.name),
        Ok(_) if is_dir => {
            return Err(err(format!(
                "cannot copy directory to file: {}",
                dest.display()
            )))
        }
        Ok(_) => dest.clone(),
        Err(_) if args.dest.ends_with('/') => {
            return Err(err(format!(
                "destination directory \"{}\" must exist",
                dest.display()
            )))
        }
        Err(_) => dest.clone(),
    };
    let top = if stat.name == "/" {
        ".".to_string()
    } else {
        stat.name.clone()
    };
    tokio::task::spawn_blocking(move || extract_renamed(&tar, &top, &target))
        .await
        .map_err(|e| err(format!("extracting: {e}")))??;
    Ok(0)
}

/// Extracts `tar`, whose entries are under `top`, with `top` renamed to `target`.
fn extract_renamed(tar: &[u8], top: &str, target: &Path) -> CliResult<()> {
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| err(format!("reading the archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| err(format!("reading the archive: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| err(format!("reading the archive: {e}")))?
            .into_owned();
        let rest = name
            .strip_prefix(top)
            .map_err(|_| err(format!("unexpected archive entry {}", name.display())))?
            .to_path_buf();
        if rest
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(err(format!("invalid archive entry {}", name.display())));
        }
        let out = if rest.as_os_str().is_empty() {
            target.to_path_buf()
        } else {
            target.join(&rest)
        };
        if entry.header().entry_type() == tar::EntryType::Link {
            let link = entry
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.into_owned())
                .unwrap_or_default();
            let link_rest = link.strip_prefix(top).unwrap_or(&link).to_path_buf();
            std::fs::hard_link(target.join(link_rest), &out)
                .map_err(|e| err(format!("linking {}: {e}", out.display())))?;
            continue;
        }
        if entry.header().entry_type() == tar::EntryType::Regular
            || entry.header().entry_type().is_symlink()
        {
            // Replace what is there, as docker does.
            if std::fs::symlink_metadata(&out).is_ok_and(|m| !m.is_dir()) {
                let _ = std::fs::remove_file(&out);
            }
        }
        entry.set_preserve_permissions(true);
        entry.set_preserve_mtime(true);
        entry
            .unpack(&out)
            .map_err(|e| err(format!("extracting {}: {e}", out.display())))?;
    }
    Ok(())
}

async fn copy_in(api: &Api, args: &CpArgs, container: &str, path: &str) -> CliResult<i32> {
    if path.is_empty() {
        return Err(err("empty destination path"));
    }
    let stat = api
        .docker
        .get_container_archive_info(
            container,
            Some(ContainerArchiveInfoOptionsBuilder::new().path(path).build()),
        )
        .await;
    let mut opts = UploadToContainerOptionsBuilder::new().no_overwrite_dir_non_dir("true");
    if args.archive {
        opts = opts.copy_uidgid("true");
    }
    if args.src == "-" {
        stat.map_err(fail)?;
        let mut tar = Vec::new();
        std::io::stdin()
            .read_to_end(&mut tar)
            .map_err(|e| err(format!("reading STDIN: {e}")))?;
        return upload(api, container, opts.path(path).build(), tar).await;
    }
    let src = PathBuf::from(&args.src);
    let meta = if args.follow_link {
        std::fs::metadata(&src)
    } else {
        std::fs::symlink_metadata(&src)
    }
    .map_err(|e| err(format!("lstat {}: {e}", src.display())))?;
    let contents_only = args.src.ends_with("/.");
    let base = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    let dest_is_dir = match &stat {
        Ok(s) => {
            s.file_mode & MODE_DIR != 0
                || (s.file_mode & MODE_SYMLINK != 0 && !s.link_target.is_empty() && {
                    api.docker
                        .get_container_archive_info(
                            container,
                            Some(
                                ContainerArchiveInfoOptionsBuilder::new()
                                    .path(&s.link_target)
                                    .build(),
                            ),
                        )
                        .await
                        .is_ok_and(|t| t.file_mode & MODE_DIR != 0)
                })
        }
        Err(_) => false,
    };
    let (dir, name) = match &stat {
        Ok(_) if dest_is_dir => (
            path.to_string(),
            if contents_only { ".".into() } else { base },
        ),
        Ok(_) if meta.is_dir() => {
            return Err(err(format!(
                "cannot copy directory to file: {container}:{path}"
            )))
        }
        Ok(_) => split_dest(path),
        Err(e) if !is_not_found(e) => return Err(CliError::daemon(1, e)),
        Err(_) if path.ends_with('/') => {
            return Err(err(format!(
                "destination \"{container}:{path}\" must be a directory"
            )))
        }
        Err(_) => split_dest(path),
    };
    let follow = args.follow_link;
    let tar = tokio::task::spawn_blocking(move || pack(&src, &name, follow, contents_only))
        .await
        .map_err(|e| err(format!("archiving: {e}")))??;
    upload(api, container, opts.path(&dir).build(), tar).await
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// `/a/b` as its directory `/a` and name `b`.
fn split_dest(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/".into(), name.into()),
        Some((dir, name)) => (dir.into(), name.into()),
        None => (".".into(), trimmed.into()),
    }
}

/// A tar of `src` with its top entry named `name` (its contents at the top for `.`).
fn pack(src: &Path, name: &str, follow: bool, contents_only: bool) -> CliResult<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(follow);
    let meta =
        std::fs::symlink_metadata(src).map_err(|e| err(format!("{}: {e}", src.display())))?;
    let result = if meta.is_dir() || (follow && src.is_dir()) {
        if contents_only {
            b.append_dir_all(".", src)
        } else {
            b.append_dir_all(name, src)
        }
    } else {
        b.append_path_with_name(src, name)
    };
    result.map_err(|e| err(format!("archiving {}: {e}", src.display())))?;
    b.into_inner()
        .map_err(|e| err(format!("archiving {}: {e}", src.display())))
}

async fn upload(
    api: &Api,
    container: &str,
    opts: bollard::query_parameters::UploadToContainerOptions,
    tar: Vec<u8>,
) -> CliResult<i32> {
    api.docker
        .upload_to_container(container, Some(opts), bollard::body_full(Bytes::from(tar)))
        .await
        .map_err(fail)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths() {
        assert_eq!(split_container("web:/etc"), Some(("web", "/etc")));
        assert_eq!(split_container("./a:b"), None);
        assert_eq!(split_container("/tmp/x:y"), None);
        assert_eq!(split_container("file"), None);
        assert_eq!(split_dest("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split_dest("/b"), ("/".into(), "b".into()));
    }

    #[test]
    fn extracts_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), "x").unwrap();
        let tar = pack(&src, "data", false, false).unwrap();
        let target = dir.path().join("copy");
        extract_renamed(&tar, "data", &target).unwrap();
        assert_eq!(std::fs::read(target.join("sub/f")).unwrap(), b"x");
    }
}
