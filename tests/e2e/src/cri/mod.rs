//! A Kubernetes node's container side without the kubelet: a private containerd 1.6
//! ([`crate::oci::Containerd`]) with its CRI plugin on, a `vmrun` runtime handler
//! (`runtime_type = "io.containerd.vmrun.v2"`), a pause image of our own
//! ([`pause::PAUSE_IMAGE`]), CNI from Debian's `containernetworking-plugins` with a
//! bridge and subnet of this node's own, and a CRI client ([`client::CriClient`]) on its
//! socket: the calls the kubelet makes for a pod whose RuntimeClass names the handler.
//!
//! The node holds its lane's lock ([`crate::daemon::take_lock`]) (it adds a bridge and routes to the host);
//! dropping it stops what containerd left, deletes the bridge and the directory.

pub mod client;
pub mod pause;
pub mod proto;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::fcntl::Flock;

use crate::oci::Containerd;
pub use client::CriClient;
pub use pause::PAUSE_IMAGE;

/// The runtime handler (`runtimes.<name>`) the tests' pods name.
pub const HANDLER: &str = "vmrun";
/// Where Debian's `containernetworking-plugins` installs the plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// A node: containerd with CRI, its CNI network and a client.
pub struct CriNode {
    /// The CRI client (dropped before containerd).
    pub client: CriClient,
    /// containerd (namespace `k8s.io`).
    pub containerd: Containerd,
    /// The CNI bridge's name.
    pub bridge: String,
    /// The pods' subnet (`10.x.y.0/24`): its first three octets.
    pub subnet_prefix: String,
    _lock: Flock<File>,
}

impl CriNode {
    /// Why a node cannot run here, if it cannot: a tool or plugin is missing.
    pub fn unavailable() -> Option<String> {
        for tool in ["containerd", "ctr", "ip", "tar"] {
            if !crate::has_tool(tool) {
                return Some(format!("`{tool}` not installed"));
            }
        }
        ["bridge", "host-local", "loopback"]
            .into_iter()
            .find(|p| !Path::new(CNI_BIN_DIR).join(p).is_file())
            .map(|p| {
                format!(
                    "CNI plugin {CNI_BIN_DIR}/{p} missing \
                     (apt-get install containernetworking-plugins)"
                )
            })
    }

    /// Starts one whose shims get `env` (check [`CriNode::unavailable`] first); an
    /// error is a failure of the node, not a missing part.
    pub fn start(env: &[(&str, &Path)]) -> Result<CriNode, String> {
        let lock = crate::daemon::take_lock();
        let subnet_prefix = free_subnet()?;
        let bridge = format!("vmcri{}", std::process::id() % 100_000);
        remove_link(&bridge);
        let cri = |dir: &Path| cri_config(dir, &bridge, &subnet_prefix);
        let containerd = Containerd::start_with_cri(env, &cri)?;
        let tar = pause::pause_tar(containerd.dir())?;
        let import = containerd.ctr(&["image", "import", &tar.display().to_string()]);
        if !import.success() {
            return Err(format!("importing the pause image: {import}"));
        }
        let client = CriClient::connect(&containerd.dir().join("c.sock"))?;
        let node = CriNode {
            client,
            containerd,
            bridge,
            subnet_prefix,
            _lock: lock,
        };
        // The CRI plugin learns of imported images from containerd's events.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pause = node.client.image_present(PAUSE_IMAGE);
            let busybox = node.client.image_present(crate::oci::CTR_BUSYBOX);
            match (pause, busybox) {
                (Ok(true), Ok(true)) => break,
                (p, b) if Instant::now() > deadline => {
                    return Err(format!(
                        "the CRI does not list the imported images: pause {p:?}, busybox {b:?}; \
                         containerd: {}",
                        node.containerd.log_tail()
                    ))
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        Ok(node)
    }

    /// A pod's sandbox configuration: name `name`, its logs under `log_dir`.
    pub fn pod_config(&self, name: &str, log_dir: &Path) -> proto::PodSandboxConfig {
        proto::PodSandboxConfig {
            metadata: Some(proto::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}-{}", std::process::id()),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: log_dir.display().to_string(),
            dns_config: Some(proto::DnsConfig {
                servers: vec!["192.0.2.53".into()],
                searches: vec!["vmrun.test".into()],
                options: Vec::new(),
            }),
            ..Default::default()
        }
    }

    /// A busybox container's configuration: `name`, running `args` (a shell command
    /// line when `sh -c`), its CRI log `log_path` (relative to the pod's log directory).
    pub fn container_config(&self, name: &str, args: &[&str]) -> proto::ContainerConfig {
        proto::ContainerConfig {
            metadata: Some(proto::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(proto::ImageSpec {
                image: crate::oci::CTR_BUSYBOX.into(),
            }),
            command: args.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            ..Default::default()
        }
    }
}

impl Drop for CriNode {
    fn drop(&mut self) {
        // containerd's own drop deletes its tasks (the shims end their VMs) and unmounts
        // the network namespaces under its state; the bridge is ours.
        remove_link(&self.bridge);
    }
}

/// The CNI network configuration and the CRI plugin's TOML tables, for a containerd in
/// `dir`.
fn cri_config(dir: &Path, bridge: &str, prefix: &str) -> Result<String, String> {
    let conf_dir = dir.join("cni");
    std::fs::create_dir_all(&conf_dir).map_err(|e| format!("creating the CNI dir: {e}"))?;
    let conflist = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": bridge,
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "isDefaultGateway": true,
            // No NAT rules: nothing on the host's firewall to clean up.
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": format!("{prefix}.0/24")}]],
                "dataDir": dir.join("cni-ipam"),
            }
        }]
    });
    std::fs::write(conf_dir.join("10-vmcri.conflist"), conflist.to_string())
        .map_err(|e| format!("writing the CNI config: {e}"))?;
    let cri = r#"[plugins."io.containerd.grpc.v1.cri"]"#;
    Ok(format!(
        "{cri}\n\
         \x20 sandbox_image = \"{PAUSE_IMAGE}\"\n\
         \x20 netns_mounts_under_state_dir = true\n\
         \x20 disable_apparmor = true\n\
         \x20 stream_server_address = \"127.0.0.1\"\n\
         \x20 stream_server_port = \"0\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
         \x20 snapshotter = \"overlayfs\"\n\
         \x20 default_runtime_name = \"runc\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n\
         \x20 runtime_type = \"io.containerd.runc.v2\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{HANDLER}]\n\
         \x20 runtime_type = \"io.containerd.vmrun.v2\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
         \x20 bin_dir = \"{CNI_BIN_DIR}\"\n\
         \x20 conf_dir = \"{}\"\n\
         \x20 max_conf_num = 1\n",
        conf_dir.display()
    ))
}

/// A `10.213.N` /24 no address or route of this host is in.
fn free_subnet() -> Result<String, String> {
    let routes = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .map_err(|e| format!("ip route: {e}"))?;
    let routes = String::from_utf8_lossy(&routes.stdout);
    (200..250)
        .map(|n| format!("10.213.{n}"))
        .find(|p| !routes.contains(&format!("{p}.")))
        .ok_or_else(|| "no free 10.213.N.0/24 subnet for the CNI bridge".into())
}

/// Deletes network link `name` if it exists.
fn remove_link(name: &str) {
    let _ = Command::new("ip")
        .args(["link", "del", name])
        .stderr(std::process::Stdio::null())
        .status();
}

/// The CRI log of a container: its lines' messages (`<time> <stream> <F|P> <message>`),
/// each with its stream.
pub fn read_cri_log(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let (_time, stream, tag) = (parts.next(), parts.next(), parts.next());
            match (stream, tag) {
                (Some(s @ ("stdout" | "stderr")), Some("F" | "P")) => {
                    Ok((s.to_string(), parts.next().unwrap_or_default().to_string()))
                }
                _ => Err(format!("not a CRI log line: {line:?}")),
            }
        })
        .collect()
}

/// A scratch directory for pod logs, removed on drop.
pub struct LogDir(pub PathBuf);

impl LogDir {
    /// Makes one.
    pub fn new() -> Result<LogDir, String> {
        nix::unistd::mkdtemp("/tmp/vmcri-logs-XXXXXX")
            .map(LogDir)
            .map_err(|e| format!("mkdtemp: {e}"))
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
