//! The OCI bundle the agent writes for a container: the spec, pointed at the bundle's
//! `rootfs` mount point, with a cgroup path, and the `/etc` files the host gave for it.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use vmrun_agent_protocol::network::EtcFiles;
use vmrun_agent_protocol::{AgentError, ErrorKind};

fn err(kind: ErrorKind, message: impl Into<String>) -> AgentError {
    AgentError::new(kind, message)
}

/// Points the spec's root at the bundle's `rootfs` and gives it a cgroup path if it has
/// none; returns the spec and that path.
pub fn prepare_spec(mut spec: Value, id: &str) -> Result<(Value, PathBuf), AgentError> {
    let Some(obj) = spec.as_object_mut() else {
        return Err(err(ErrorKind::BadRequest, "the spec is not a JSON object"));
    };
    let readonly = obj
        .get("root")
        .and_then(|r| r.get("readonly"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    obj.insert(
        "root".into(),
        json!({"path": "rootfs", "readonly": readonly}),
    );
    let linux = obj.entry("linux").or_insert_with(|| json!({}));
    let Some(linux) = linux.as_object_mut() else {
        return Err(err(ErrorKind::BadRequest, "spec.linux is not an object"));
    };
    let cgroups_path = match linux.get("cgroupsPath").and_then(Value::as_str) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => {
            let p = format!("/vmrun/{id}");
            linux.insert("cgroupsPath".into(), Value::String(p.clone()));
            p
        }
    };
    // Parse once here so a bad spec fails the request, not the shim.
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone())
        .map_err(|e| err(ErrorKind::BadRequest, format!("invalid OCI spec: {e}")))?;
    Ok((spec, PathBuf::from(cgroups_path)))
}

/// Writes `files` into `dir` and binds them over the image's `/etc/hostname` (when
/// given), `/etc/hosts` and `/etc/resolv.conf` in `spec` (a spec [`prepare_spec`]
/// accepted).
pub fn add_etc_files(spec: &mut Value, dir: &Path, files: &EtcFiles) -> Result<(), AgentError> {
    let mut binds = Vec::new();
    let all = [
        ("hostname", &files.hostname),
        ("hosts", &files.hosts),
        ("resolv.conf", &files.resolv_conf),
    ];
    for (name, content) in all
        .into_iter()
        .filter(|(name, content)| *name != "hostname" || !content.is_empty())
    {
        let path = dir.join(name);
        std::fs::write(&path, content).map_err(|e| {
            err(
                ErrorKind::Internal,
                format!("writing {}: {e}", path.display()),
            )
        })?;
        binds.push(json!({
            "destination": format!("/etc/{name}"),
            "type": "bind",
            "source": path,
            "options": ["rbind", "rprivate", "rw"],
        }));
    }
    let Some(obj) = spec.as_object_mut() else {
        return Err(err(ErrorKind::BadRequest, "the spec is not a JSON object"));
    };
    match obj
        .entry("mounts")
        .or_insert_with(|| json!([]))
        .as_array_mut()
    {
        Some(mounts) => {
            // The image's files, not the bind, would be seen under an earlier mount of /etc.
            mounts.retain(|m| {
                let dest = m.get("destination").and_then(Value::as_str);
                !matches!(
                    dest,
                    Some("/etc/hosts" | "/etc/resolv.conf" | "/etc/hostname")
                )
            });
            mounts.extend(binds);
            Ok(())
        }
        None => Err(err(ErrorKind::BadRequest, "spec.mounts is not an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_gets_root_and_cgroup() {
        let (spec, cg) = prepare_spec(
            json!({"ociVersion": "1.0.2", "root": {"path": "/elsewhere", "readonly": true}}),
            "c1",
        )
        .unwrap();
        assert_eq!(spec["root"], json!({"path": "rootfs", "readonly": true}));
        assert_eq!(cg, PathBuf::from("/vmrun/c1"));
        assert_eq!(spec["linux"]["cgroupsPath"], "/vmrun/c1");
        let e = prepare_spec(json!([1]), "c").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        let e = prepare_spec(json!({"ociVersion": 5}), "c").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
    }

    #[test]
    fn etc_files_are_written_and_bound_over_the_images() {
        let dir = std::env::temp_dir().join(format!("vmrun-agent-etc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut spec = json!({"mounts": [{"destination": "/etc/hosts", "type": "bind"}, {"destination": "/proc"}]});
        let mut files = EtcFiles {
            hosts: "127.0.0.1\tlocalhost\n".into(),
            hostname: String::new(),
            resolv_conf: "nameserver 10.0.2.3\n".into(),
        };
        let dests = |spec: &Value| -> Vec<String> {
            spec["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|m| m["destination"].as_str().map(str::to_string))
                .collect()
        };
        add_etc_files(&mut spec, &dir, &files).unwrap();
        assert_eq!(dests(&spec), ["/proc", "/etc/hosts", "/etc/resolv.conf"]);
        assert_eq!(
            std::fs::read_to_string(dir.join("resolv.conf")).unwrap(),
            files.resolv_conf
        );
        assert!(!dir.join("hostname").exists());
        // With a hostname: bound too (once, over an earlier bind of the image's).
        files.hostname = "box\n".into();
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/etc/hostname", "type": "bind"}));
        add_etc_files(&mut spec, &dir, &files).unwrap();
        assert_eq!(
            dests(&spec),
            ["/proc", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("hostname")).unwrap(),
            "box\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
