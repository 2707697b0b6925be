//! Host files and directories a task's spec binds into its container: under the CRI the
//! pod's `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` and `/dev/shm` (files and a
//! tmpfs containerd made in the sandbox's directory), the kubelet's termination log and
//! hostPath volumes; with `ctr run --mount type=bind,...` whatever is named. The guest
//! cannot see host paths, so each bind's source is shared into the VM through the
//! file-share channel (`vmrun_fileshare`, as the daemon shares `-v` binds) and the
//! guest spec's source is rewritten to the share's guest path:
//!
//! - a directory is shared as it is;
//! - a file is bound, on the host, onto an empty file in a directory of its own under
//!   `<bundle>/vmrun-binds/<n>/`, and that directory is shared: the guest sees that one
//!   file and nothing beside it, and changes either side (the CRI rewrites
//!   `/etc/hosts`) are the same file.
//!
//! A bind whose options say `ro` is shared read-only (the host side refuses writes, the
//! guest mounts it read-only). Other sources (device nodes, sockets) cannot cross and
//! fail the create.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;
use vmrun_daemon::backend::vm::shares::GuestShare;

/// Where the binds' files are bound on the host, under the bundle.
const BINDS_DIR: &str = "vmrun-binds";

/// Shares the host sources of `spec`'s bind mounts, rewriting their sources to guest
/// paths; `share_id` names each share. The shares to connect, in the spec's order.
pub fn share_binds(
    spec: &mut Value,
    bundle: &Path,
    share_id: &mut dyn FnMut() -> String,
) -> anyhow::Result<Vec<GuestShare>> {
    let Some(mounts) = spec.get_mut("mounts").and_then(Value::as_array_mut) else {
        return Ok(Vec::new());
    };
    let mut shares = Vec::new();
    for (index, m) in mounts.iter_mut().enumerate() {
        let Some(source) = host_source(m) else {
            continue;
        };
        let read_only = options(m).any(|o| o == "ro");
        let id = share_id();
        let meta = std::fs::metadata(&source)
            .with_context(|| format!("bind mount source {}", source.display()))?;
        let (host_path, guest_source) = if meta.is_dir() {
            (source.clone(), vmrun_agent_protocol::share_path(&id))
        } else if meta.is_file() {
            let name = source
                .file_name()
                .ok_or_else(|| anyhow!("bind mount source {} has no name", source.display()))?;
            let dir = bundle.join(BINDS_DIR).join(index.to_string());
            bind_file(&source, &dir.join(name))?;
            (dir, vmrun_agent_protocol::share_path(&id).join(name))
        } else {
            bail!(
                "bind mount source {} is neither a file nor a directory: \
                 it cannot be shared into the VM",
                source.display()
            );
        };
        m["source"] = Value::String(guest_source.display().to_string());
        shares.push(GuestShare {
            id,
            host_path,
            read_only,
        });
    }
    Ok(shares)
}

/// The host source of mount `m` if it is a bind of a host path.
fn host_source(m: &Value) -> Option<PathBuf> {
    let is_bind = m.get("type").and_then(Value::as_str) == Some("bind")
        || options(m).any(|o| o == "bind" || o == "rbind");
    let source = m.get("source").and_then(Value::as_str)?;
    (is_bind && source.starts_with('/')).then(|| PathBuf::from(source))
}

fn options(m: &Value) -> impl Iterator<Item = &str> {
    m.get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Binds file `source` onto `target` (created empty, with its directory).
fn bind_file(source: &Path, target: &Path) -> anyhow::Result<()> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::File::create(target).with_context(|| format!("creating {}", target.display()))?;
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("binding {} onto {}", source.display(), target.display()))
}

/// Unmounts the files [`share_binds`] bound under `bundle` and removes their
/// directories (none is fine).
pub fn unmount(bundle: &Path) -> anyhow::Result<()> {
    let top = bundle.join(BINDS_DIR);
    let entries = match std::fs::read_dir(&top) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", top.display())),
    };
    for dir in entries.flatten() {
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = file.path();
            match nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(e).with_context(|| format!("unmounting {}", path.display())),
            }
        }
    }
    std::fs::remove_dir_all(&top).with_context(|| format!("removing {}", top.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("bind-{n}")
        }
    }

    #[test]
    fn directories_are_shared_and_other_mounts_kept() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("data");
        std::fs::create_dir(&host).unwrap();
        let mut spec = json!({"mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "bind", "source": host, "options": ["rbind", "ro"]},
            {"destination": "/w", "source": host, "options": ["rbind", "rw"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "/shm"}
        ]});
        let shares = share_binds(&mut spec, dir.path(), &mut ids()).unwrap();
        assert_eq!(
            shares,
            vec![
                GuestShare {
                    id: "bind-1".into(),
                    host_path: host.clone(),
                    read_only: true
                },
                GuestShare {
                    id: "bind-2".into(),
                    host_path: host.clone(),
                    read_only: false
                }
            ]
        );
        let guest = |id: &str| vmrun_agent_protocol::share_path(id).display().to_string();
        assert_eq!(spec["mounts"][0]["source"], "proc");
        assert_eq!(spec["mounts"][1]["source"], guest("bind-1"));
        assert_eq!(spec["mounts"][2]["source"], guest("bind-2"));
        assert_eq!(spec["mounts"][3]["source"], "/shm", "not a bind");
    }

    #[test]
    fn a_missing_source_or_a_device_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = json!({"mounts": [
            {"destination": "/x", "type": "bind", "source": dir.path().join("none")}
        ]});
        assert!(share_binds(&mut spec, dir.path(), &mut ids()).is_err());
        let mut spec = json!({"mounts": [
            {"destination": "/null", "type": "bind", "source": "/dev/null"}
        ]});
        let err = share_binds(&mut spec, dir.path(), &mut ids()).unwrap_err();
        assert!(format!("{err:#}").contains("neither a file nor a directory"));
        assert!(share_binds(&mut json!({}), dir.path(), &mut ids())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_file_is_bound_alone_into_a_shared_directory() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: binding a file needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 pod\n").unwrap();
        std::fs::write(dir.path().join("secret"), "not for the guest").unwrap();
        let bundle = dir.path().join("bundle");
        let mut spec = json!({"mounts": [
            {"destination": "/etc/hosts", "type": "bind", "source": hosts, "options": ["rbind", "rw"]}
        ]});
        let shares = share_binds(&mut spec, &bundle, &mut ids()).unwrap();
        assert_eq!(shares.len(), 1);
        let shared = &shares[0].host_path;
        assert_eq!(
            std::fs::read_dir(shared).unwrap().count(),
            1,
            "only the file is in the shared directory"
        );
        std::fs::write(&hosts, "127.0.0.1 pod other\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(shared.join("hosts")).unwrap(),
            "127.0.0.1 pod other\n"
        );
        assert_eq!(
            spec["mounts"][0]["source"],
            vmrun_agent_protocol::share_path("bind-1")
                .join("hosts")
                .display()
                .to_string()
        );
        unmount(&bundle).unwrap();
        assert!(!bundle.join(BINDS_DIR).exists());
        unmount(&bundle).unwrap();
    }
}
