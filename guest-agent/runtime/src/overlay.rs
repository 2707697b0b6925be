//! Overlayfs helpers the monitor uses to build a rootfs before `create`.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use crate::error::RuntimeError;

/// Mount data must fit one page.
const MAX_DATA: usize = 4095;

/// Escapes the characters overlayfs splits option values on.
fn escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.as_os_str().to_string_lossy().chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn overlay_data(lowers: &[PathBuf], upper: &Path, work: &Path) -> String {
    let lower: Vec<String> = lowers.iter().map(|l| escape(l)).collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        escape(upper),
        escape(work)
    )
}

/// Mounts a read-only overlay of `lowers` (top-most first, at least two) at `target`:
/// no upper directory, so nothing can be written and unmounting has nothing to sync.
pub fn mount_overlay_read_only(lowers: &[PathBuf], target: &Path) -> Result<(), RuntimeError> {
    if lowers.len() < 2 {
        return Err(RuntimeError::InvalidSpec(
            "a read-only overlay needs at least two lower layers".into(),
        ));
    }
    let lower: Vec<String> = lowers.iter().map(|l| escape(l)).collect();
    let data = format!("lowerdir={}", lower.join(":"));
    if data.len() > MAX_DATA {
        return Err(RuntimeError::InvalidSpec(format!(
            "overlay options are {} bytes (limit {MAX_DATA})",
            data.len()
        )));
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(data.as_str()),
    )
    .map_err(|e| RuntimeError::sys(format!("mount overlay on {}", target.display()), e))
}

/// The longest directory all `paths` are under.
fn common_parent(paths: &[PathBuf]) -> PathBuf {
    let mut common = paths.first().cloned().unwrap_or_default();
    for p in paths {
        while !p.starts_with(&common) {
            if !common.pop() {
                return PathBuf::from("/");
            }
        }
    }
    common
}

/// Mounts an overlay at `target`: `lowers[0]` is the top-most layer (as
/// overlayfs orders `lowerdir`). When the option string would exceed a page,
/// a short-lived child process `chdir`s to the layers' common parent and
/// mounts with relative paths (the caller's cwd stays untouched).
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RuntimeError> {
    if lowers.is_empty() {
        return Err(RuntimeError::InvalidSpec(
            "overlay needs at least one lower layer".into(),
        ));
    }
    let data = overlay_data(lowers, upper, work);
    if data.len() <= MAX_DATA {
        return mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| RuntimeError::sys(format!("mount overlay on {}", target.display()), e));
    }
    let mut all: Vec<PathBuf> = lowers.to_vec();
    all.push(upper.to_path_buf());
    all.push(work.to_path_buf());
    let base = common_parent(&all);
    let relative: Vec<PathBuf> = all
        .iter()
        .map(|p| {
            p.strip_prefix(&base)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| p.clone())
        })
        .collect();
    let n = lowers.len();
    let data = overlay_data(&relative[..n], &relative[n], &relative[n + 1]);
    if data.len() > MAX_DATA {
        return Err(RuntimeError::InvalidSpec(format!(
            "overlay options are {} bytes even with relative paths (limit {MAX_DATA})",
            data.len()
        )));
    }
    let target = target
        .canonicalize()
        .map_err(|e| RuntimeError::io("overlay target", target, e))?;
    // SAFETY: the child only calls chdir, mount and _exit.
    match unsafe { fork() }.map_err(|e| RuntimeError::sys("fork", e))? {
        ForkResult::Child => {
            let ok = nix::unistd::chdir(&base).is_ok()
                && mount(
                    Some("overlay"),
                    &target,
                    Some("overlay"),
                    MsFlags::empty(),
                    Some(data.as_str()),
                )
                .is_ok();
            // SAFETY: _exit never returns.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            _ => Err(RuntimeError::Setup(format!(
                "mount overlay of {n} layers on {} failed",
                target.display()
            ))),
        },
    }
}

/// Unmounts `target` (lazily when busy).
pub fn unmount(target: &Path) -> Result<(), RuntimeError> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| RuntimeError::sys(format!("unmount {}", target.display()), e)),
        Err(e) => Err(RuntimeError::sys(
            format!("unmount {}", target.display()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_options_and_escapes() {
        let d = overlay_data(
            &[PathBuf::from("/l/top"), PathBuf::from("/l/a:b")],
            Path::new("/u"),
            Path::new("/w"),
        );
        assert_eq!(d, "lowerdir=/l/top:/l/a\\:b,upperdir=/u,workdir=/w");
    }

    #[test]
    fn finds_common_parent() {
        let p = common_parent(&[
            PathBuf::from("/var/lib/x/layers/1/fs"),
            PathBuf::from("/var/lib/x/layers/2/fs"),
            PathBuf::from("/var/lib/x/c/upper"),
        ]);
        assert_eq!(p, Path::new("/var/lib/x"));
    }
}
