//! A pod's network: the CRI gives its sandbox (pause) container a network namespace
//! that CNI made on the host (`linux.namespaces` network `path`), where the pod's
//! address and routes are. The guest cannot enter a host namespace, so the sandbox
//! container gets `eth0` in its guest namespace as every container in a VM does (a TAP
//! whose frames cross vsock to a `passt` on the host), with that `passt` started inside
//! the pod's host namespace: the pod's outbound traffic leaves through its CNI
//! interface, from its pod IP, and the guest's `eth0` has the pod IP, prefix and gateway
//! too (read from that namespace), as under Kata. The pod's other containers join the sandbox's guest
//! namespace ([`crate::sandbox`]), so they share that path.
//!
//! Connections *to* the pod IP reach the guest as the daemon's automatically forwarded
//! ports do ([`pod_ports`]): the agent reports the ports the pod's containers serve on as
//! they change, and the shim listens on each in the pod's namespace (all its addresses)
//! and relays every connection or UDP flow through an agent stream into the sandbox's
//! guest namespace. (`passt -t PORTS` was tried first: its connections reached the
//! guest's listener, but the guest's data was retransmitted unanswered; and `-t all`
//! needs more descriptors than this host allows a process.)

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde_json::Value;
use vmrun_daemon::backend::vm::network::PasstOptions;
use vmrun_daemon::backend::vm::ports::ListenPlace;

/// The `passt` of a CRI sandbox container's network, when `spec` is one with a host
/// network namespace.
pub fn pod_network(spec: &Value) -> Option<PasstOptions> {
    let container_type = spec
        .get("annotations")
        .and_then(|a| a.get(crate::sandbox::CONTAINER_TYPE))
        .and_then(Value::as_str);
    if container_type != Some("sandbox") {
        return None;
    }
    let netns = spec
        .get("linux")
        .and_then(|l| l.get("namespaces"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|ns| ns.get("type").and_then(Value::as_str) == Some("network"))
        .and_then(|ns| ns.get("path"))
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())?;
    Some(PasstOptions {
        netns: Some(PathBuf::from(netns)),
    })
}

/// Where a pod's ports are forwarded from: every address of its CNI namespace.
pub fn pod_ports(options: &PasstOptions) -> ListenPlace {
    ListenPlace {
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        netns: options.netns.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cri_sandbox_with_a_host_netns_gets_passt_there() {
        let spec = json!({
            "annotations": {"io.kubernetes.cri.container-type": "sandbox"},
            "linux": {"namespaces": [
                {"type": "pid"},
                {"type": "network", "path": "/run/netns/cni-1"}
            ]}
        });
        let got = pod_network(&spec).unwrap();
        assert_eq!(got.netns, Some(PathBuf::from("/run/netns/cni-1")));
    }

    #[test]
    fn other_tasks_get_none() {
        let mut spec = json!({
            "annotations": {"io.kubernetes.cri.container-type": "container"},
            "linux": {"namespaces": [{"type": "network", "path": "/run/netns/cni-1"}]}
        });
        assert!(pod_network(&spec).is_none());
        // Host network (no namespace of its own), or no path: nothing to enter.
        spec["annotations"]["io.kubernetes.cri.container-type"] = "sandbox".into();
        spec["linux"]["namespaces"] = json!([{"type": "network"}]);
        assert!(pod_network(&spec).is_none());
        assert!(pod_network(&json!({})).is_none());
    }
}
