//! A stopped native container's files, mounted for one operation (`docker cp`,
//! `docker export`): its overlay at its rootfs directory and, for `docker cp`, its
//! volumes and binds at their places inside it, as dockerd mounts them for a stopped
//! container. Everything is unmounted when the [`Mounted`] guard goes.
//!
//! The binds are [`vmrun_containerfs::binds`]'s, shared with the guest agent, which
//! mounts a stopped VM container's the same way.

use std::path::PathBuf;

use super::files::ContainerPaths;
use crate::backend::{BackendError, ContainerSpec};
use vmrun_containerfs::binds::{self, Bind, Binds};
use vmrun_containerfs::Root;

/// What was mounted; unmounted (binds first, newest first) on drop.
pub struct Mounted {
    overlay: PathBuf,
    binds: Option<Binds>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        drop(self.binds.take());
        if let Err(e) = vmrun_runtime::unmount(&self.overlay) {
            tracing::warn!("unmounting {}: {e}", self.overlay.display());
        }
    }
}

fn failed(what: String) -> impl Fn(std::io::Error) -> BackendError {
    move |e| BackendError::Failed(format!("{what}: {e}"))
}

/// Mounts the stopped container's overlay at its rootfs directory and, with `volumes`,
/// its binds and volumes inside it; returns the root and the guard.
pub fn mount(
    paths: &ContainerPaths,
    c: &ContainerSpec,
    volumes: bool,
) -> Result<(Root, Mounted), BackendError> {
    for d in [&paths.diff, &paths.work, &paths.rootfs] {
        std::fs::create_dir_all(d).map_err(failed("preparing the container's files".into()))?;
    }
    let lowers: Vec<PathBuf> = c.layers.iter().rev().cloned().collect();
    vmrun_runtime::mount_overlay(&lowers, &paths.diff, &paths.work, &paths.rootfs)
        .map_err(|e| BackendError::Failed(format!("mounting the container's files: {e}")))?;
    let mut mounted = Mounted {
        overlay: paths.rootfs.clone(),
        binds: None,
    };
    let root = Root::open(&paths.rootfs).map_err(failed("opening the container's files".into()))?;
    if volumes {
        let wanted: Vec<Bind<'_>> = c
            .mounts
            .iter()
            .map(|m| Bind {
                source: &m.source,
                destination: &m.destination,
                read_only: m.read_only,
            })
            .collect();
        let made = binds::mount(&root, &paths.rootfs, &wanted)
            .map_err(|e| BackendError::Failed(e.to_string()))?;
        mounted.binds = Some(made);
    }
    Ok((root, mounted))
}
