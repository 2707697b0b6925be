//! Which isolation a create request asks for: docker's `HostConfig.Isolation`
//! (`--isolation`) and `HostConfig.Runtime` (`--runtime`).

use super::EngineError;
use crate::backend::Isolation;

/// Runtime names (`--runtime`) of each isolation; the first is the one `docker info`
/// shows.
pub const RUNTIMES: [(&str, Isolation); 6] = [
    ("vmrun", Isolation::Native),
    ("runc", Isolation::Native),
    ("native", Isolation::Native),
    ("vmrun-vm", Isolation::Vm),
    ("vm", Isolation::Vm),
    ("vmrun-shared-vm", Isolation::SharedVm),
];

fn from_isolation(isolation: &str) -> Result<Option<Isolation>, EngineError> {
    match isolation {
        "" | "default" => Ok(None),
        "process" | "native" => Ok(Some(Isolation::Native)),
        "vm" | "hyperv" => Ok(Some(Isolation::Vm)),
        "shared-vm" => Ok(Some(Isolation::SharedVm)),
        other => Err(EngineError::bad_request(format!(
            "invalid isolation \"{other}\": vmrund supports default, process, vm (or hyperv) and shared-vm"
        ))),
    }
}

fn from_runtime(runtime: &str) -> Result<Option<Isolation>, EngineError> {
    if runtime.is_empty() {
        return Ok(None);
    }
    RUNTIMES
        .iter()
        .find(|(name, _)| *name == runtime)
        .map(|(_, i)| Some(*i))
        .ok_or_else(|| {
            EngineError::bad_request(format!("unknown or invalid runtime name: {runtime}"))
        })
}

/// The isolation `--isolation` and `--runtime` ask for together (`default`, the daemon
/// mode's, when neither does). Unknown names and a contradiction between the two are
/// errors naming them.
pub fn requested_isolation(
    isolation: Option<&str>,
    runtime: Option<&str>,
    default: Isolation,
) -> Result<Isolation, EngineError> {
    let by_isolation = from_isolation(isolation.unwrap_or(""))?;
    let by_runtime = from_runtime(runtime.unwrap_or(""))?;
    match (by_isolation, by_runtime) {
        (Some(a), Some(b)) if a != b => Err(EngineError::bad_request(format!(
            "isolation \"{}\" conflicts with runtime \"{}\"",
            isolation.unwrap_or(""),
            runtime.unwrap_or("")
        ))),
        (a, b) => Ok(a.or(b).unwrap_or(default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested_isolation(i: Option<&str>, r: Option<&str>) -> Result<Isolation, EngineError> {
        super::requested_isolation(i, r, Isolation::Native)
    }

    #[test]
    fn the_mode_decides_when_nothing_is_asked() {
        let shared = Isolation::SharedVm;
        assert_eq!(super::requested_isolation(None, None, shared), Ok(shared));
        assert_eq!(
            super::requested_isolation(Some("process"), None, shared),
            Ok(Isolation::Native)
        );
        assert_eq!(
            super::requested_isolation(None, Some("vm"), shared),
            Ok(Isolation::Vm)
        );
        assert_eq!(
            requested_isolation(Some("shared-vm"), Some("vmrun-shared-vm")),
            Ok(shared)
        );
    }

    #[test]
    fn isolation_and_runtime_choose_together() {
        assert_eq!(requested_isolation(None, None), Ok(Isolation::Native));
        assert_eq!(
            requested_isolation(Some("default"), Some("")),
            Ok(Isolation::Native)
        );
        assert_eq!(requested_isolation(Some("hyperv"), None), Ok(Isolation::Vm));
        assert_eq!(
            requested_isolation(None, Some("vmrun-vm")),
            Ok(Isolation::Vm)
        );
        assert_eq!(
            requested_isolation(Some("vm"), Some("vmrun-vm")),
            Ok(Isolation::Vm)
        );
        let e = requested_isolation(Some("process"), Some("vmrun-vm")).unwrap_err();
        assert!(e.to_string().contains("conflicts"), "{e}");
        let e = requested_isolation(None, Some("crun")).unwrap_err();
        assert_eq!(
            e,
            EngineError::bad_request("unknown or invalid runtime name: crun")
        );
        let e = requested_isolation(Some("sandbox"), None).unwrap_err();
        assert!(e.to_string().contains("\"sandbox\""), "{e}");
    }
}
