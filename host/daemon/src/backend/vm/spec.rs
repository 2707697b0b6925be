//! The OCI spec of a container in a microVM: the native backend's spec (command,
//! environment, capabilities, seccomp, limits), less what names the host. The agent
//! replaces `root.path` and binds `/etc/hosts` and `/etc/resolv.conf`; the container gets
//! a network namespace of its own (the agent adds `eth0` to it, see `network.rs`); its
//! mounts are given with their sources in the guest (volumes on the data disk, shared
//! host directories).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Process, Spec};

use crate::backend::native::spec::{self as native_spec, EtcFiles, SpecInputs};
use crate::backend::{BackendError, ContainerSpec, ExecSpec};

/// The guest spec of `c` with `guest_mounts` (sources in the guest) in place of its
/// mounts, which the caller has translated.
pub fn container_spec_with_mounts(
    c: &ContainerSpec,
    guest_mounts: &[crate::backend::MountSpec],
) -> Result<Spec, BackendError> {
    let mut without = c.clone();
    without.mounts.clear();
    let mut spec = guest_spec(&without)?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for m in guest_mounts {
        mounts.push(native_spec::bind(&m.source, &m.destination, m.read_only));
    }
    spec.set_mounts(Some(mounts));
    Ok(spec)
}

fn guest_spec(c: &ContainerSpec) -> Result<Spec, BackendError> {
    // Placeholders: the etc files are host paths and their binds are dropped below.
    let none = PathBuf::new();
    let files = EtcFiles {
        hosts: none.clone(),
        hostname: none.clone(),
        resolv_conf: none,
    };
    let mut spec = native_spec::build(&SpecInputs {
        container: c,
        rootfs: Path::new("rootfs"),
        netns: None,
        files: &files,
    })?;
    let mounts = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ().as_deref() != Some("bind"))
        .collect();
    spec.set_mounts(Some(mounts));
    if let Some(mut linux) = spec.linux().clone() {
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
        let mut net = LinuxNamespace::default();
        net.set_typ(LinuxNamespaceType::Network);
        namespaces.push(net);
        linux.set_namespaces(Some(namespaces));
        spec.set_linux(Some(linux));
    }
    Ok(spec)
}

/// The OCI process of an exec: the container's process with the exec's changes. A user
/// name is looked up in the image's layers (top-most `/etc/passwd` first), not in the
/// container's writable layer.
pub fn exec_process(
    spec: &Spec,
    exec: &ExecSpec,
    layers: &[PathBuf],
) -> Result<Process, BackendError> {
    crate::backend::exec::exec_process(spec.process().as_ref(), exec, || {
        layers
            .iter()
            .rev()
            .find(|l| l.join("etc/passwd").is_file())
            .or_else(|| layers.last())
            .cloned()
            .ok_or_else(|| BackendError::BadRequest("the container has no layers".into()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{MountSpec, ProcessSpec};

    fn container() -> ContainerSpec {
        ContainerSpec {
            id: "c".repeat(64),
            name: "c".into(),
            hostname: "host1".into(),
            process: ProcessSpec {
                args: vec!["true".into()],
                ..ProcessSpec::default()
            },
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn the_guest_spec_names_nothing_of_the_host() {
        let spec = container_spec_with_mounts(&container(), &[]).unwrap();
        let mounts = spec.mounts().clone().unwrap_or_default();
        assert!(mounts.iter().all(|m| m.typ().as_deref() != Some("bind")));
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let net: Vec<_> = namespaces
            .iter()
            .filter(|n| n.typ() == LinuxNamespaceType::Network)
            .collect();
        assert_eq!(net.len(), 1);
        assert!(
            net[0].path().is_none(),
            "a fresh namespace, not a host path"
        );
        assert_eq!(spec.hostname().as_deref(), Some("host1"));
    }

    #[test]
    fn mounts_are_the_guest_sources_given() {
        let mut c = container();
        c.mounts.push(MountSpec {
            source: "/host/dir".into(),
            destination: "/x".into(),
            read_only: false,
            fill_from_image: false,
        });
        let guest = [MountSpec {
            source: "/run/vmrun/shares/c-0".into(),
            destination: "/x".into(),
            read_only: true,
            fill_from_image: false,
        }];
        let spec = container_spec_with_mounts(&c, &guest).unwrap();
        let binds: Vec<_> = spec
            .mounts()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.typ().as_deref() == Some("bind"))
            .collect();
        assert_eq!(binds.len(), 1);
        assert_eq!(
            binds[0].source().as_deref(),
            Some(Path::new("/run/vmrun/shares/c-0"))
        );
        assert!(binds[0]
            .options()
            .as_ref()
            .is_some_and(|o| o.contains(&"ro".to_string())));
    }
}
