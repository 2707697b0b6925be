//! The OCI bundle the agent writes for a container: the spec, pointed at the bundle's
//! `rootfs` mount point, with a cgroup path.

use std::path::PathBuf;

use serde_json::{json, Value};
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
}
