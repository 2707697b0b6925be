//! How a shim's tasks are isolated: in a microVM (runtime `io.containerd.vmrun.v2`), or
//! natively on this host (runtime `io.containerd.vmrun-native.v2`, i.e. this binary
//! under the name `containerd-shim-vmrun-native-v2`, or any task whose spec carries the
//! annotation `io.vmrun.isolation=none`, which the CRI passes from a pod's annotations
//! when the runtime's `pod_annotations` lists it). `start` decides from both and hands
//! the decision to the server it spawns in [`ENV`].

use std::path::Path;

/// The annotation asking for an isolation.
pub const ANNOTATION: &str = "io.vmrun.isolation";
/// The environment variable carrying the decision from `start` to the server.
pub const ENV: &str = "VMRUN_SHIM_ISOLATION";
/// The binary name of the native runtime `io.containerd.vmrun-native.v2`.
pub const NATIVE_BINARY: &str = "containerd-shim-vmrun-native-v2";

/// Where tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// In the shim's microVM.
    Vm,
    /// On this host (the runtime library in the agent, run as a host process).
    None,
}

impl Isolation {
    /// The word for it (annotation value and [`ENV`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Vm => "vm",
            Isolation::None => "none",
        }
    }

    /// The isolation named `s`.
    pub fn parse(s: &str) -> Option<Isolation> {
        match s {
            "vm" => Some(Isolation::Vm),
            "none" | "native" => Some(Isolation::None),
            _ => None,
        }
    }

    /// What `start` decides for a task: the native binary name, else the spec's
    /// annotation, else a VM. An unknown annotation value is an error.
    pub fn for_task(argv0: &Path, spec: Option<&serde_json::Value>) -> Result<Isolation, String> {
        if argv0.file_name().is_some_and(|n| n == NATIVE_BINARY) {
            return Ok(Isolation::None);
        }
        let asked = spec
            .and_then(|s| s.get("annotations"))
            .and_then(|a| a.get(ANNOTATION))
            .and_then(serde_json::Value::as_str);
        match asked {
            None => Ok(Isolation::Vm),
            Some(v) => Isolation::parse(v)
                .ok_or_else(|| format!("annotation {ANNOTATION}={v}: expected `vm` or `none`")),
        }
    }

    /// The server's isolation, from [`ENV`] (a VM when unset).
    pub fn from_env() -> Isolation {
        std::env::var(ENV)
            .ok()
            .and_then(|v| Isolation::parse(&v))
            .unwrap_or(Isolation::Vm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_binary_name_or_the_annotation_choose() {
        let vm = Path::new("/usr/local/bin/containerd-shim-vmrun-v2");
        let native = Path::new("/usr/local/bin/containerd-shim-vmrun-native-v2");
        assert_eq!(Isolation::for_task(vm, None), Ok(Isolation::Vm));
        assert_eq!(Isolation::for_task(native, None), Ok(Isolation::None));
        let asked = json!({"annotations": {"io.vmrun.isolation": "none"}});
        assert_eq!(Isolation::for_task(vm, Some(&asked)), Ok(Isolation::None));
        let vm_asked = json!({"annotations": {"io.vmrun.isolation": "vm"}});
        assert_eq!(Isolation::for_task(vm, Some(&vm_asked)), Ok(Isolation::Vm));
        // The native runtime's name wins over an annotation.
        assert_eq!(
            Isolation::for_task(native, Some(&vm_asked)),
            Ok(Isolation::None)
        );
        let bad = json!({"annotations": {"io.vmrun.isolation": "kvm"}});
        assert!(Isolation::for_task(vm, Some(&bad)).is_err());
        assert_eq!(
            Isolation::parse(Isolation::None.as_str()),
            Some(Isolation::None)
        );
    }
}
