//! Shared helpers of the integration tests: root detection, an isolated
//! manager (own state dir, netns dir, bridge names, subnets) torn down on drop.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vmrun_network::{netns, AttachRequest, Ipv4Net, ManagerConfig, NetworkManager};

/// Why these tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (netns, veth, bridges)".into());
    }
    if !Path::new("/proc/thread-self/ns/net").exists() {
        return Some("no /proc/thread-self/ns/net".into());
    }
    None
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

macro_rules! require_root {
    () => {
        if let Some(reason) = common::skip_reason() {
            vmrun_test_skip::report(format_args!("{reason}"));
            return;
        }
    };
}
pub(crate) use require_root;

/// A manager with its own directories, default bridge `vmtb<tag>` on
/// `default_subnet`, user bridges `vmt<tag>-<id>`. Tears everything down on drop.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub config: ManagerConfig,
    pub manager: Option<NetworkManager>,
}

impl TestEnv {
    pub fn new(tag: &str, default_subnet: &str) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let config = ManagerConfig {
            state_dir: dir.path().join("state"),
            netns_dir: dir.path().join("netns"),
            default_bridge: format!("vmtb{tag}"),
            default_subnet: Some(default_subnet.parse().unwrap()),
            bridge_prefix: format!("vmt{tag}-"),
            netns_pool_size: 2,
        };
        let manager = NetworkManager::open_with(config.clone()).unwrap();
        TestEnv {
            dir,
            config,
            manager: Some(manager),
        }
    }

    pub fn manager(&self) -> &NetworkManager {
        self.manager.as_ref().unwrap()
    }

    /// Drops the manager and opens a new one from the same state.
    pub fn reopen(&mut self) {
        self.manager = None;
        self.manager = Some(NetworkManager::open_with(self.config.clone()).unwrap());
    }

    pub fn hosts_file(&self, container: &str) -> PathBuf {
        self.dir
            .path()
            .join("containers")
            .join(container)
            .join("hosts")
    }

    pub fn request(&self, container: &str, network: &str) -> AttachRequest {
        AttachRequest {
            container_id: container.to_string(),
            container_name: format!("/{container}-name"),
            hostname: format!("{container}-host"),
            network: network.to_string(),
            aliases: vec![format!("{container}-alias")],
            hosts_file: self.hosts_file(container),
            extra_hosts: vec![
                vmrun_network::ExtraHost::host_internal(),
                vmrun_network::ExtraHost::parse("db.example:10.9.8.7").expect("a valid extra host"),
            ],
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(manager) = self.manager.take() {
            if let Err(e) = manager.teardown() {
                eprintln!("teardown: {e}");
            }
        }
    }
}

/// Whether a host interface exists.
pub fn host_link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Runs a command inside a namespace with nsenter, returning stdout.
pub fn in_netns(path: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new("nsenter")
        .arg(format!("--net={}", path.display()))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// A TCP echo server listening inside a namespace; serves forever on a thread.
pub fn tcp_echo_in(netns_path: &Path, addr: SocketAddr) {
    let listener = netns::run_in(netns_path, move || TcpListener::bind(addr))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buffer[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

/// A UDP echo server bound inside a namespace; serves forever on a thread.
pub fn udp_echo_in(netns_path: &Path, addr: SocketAddr) {
    let socket = netns::run_in(netns_path, move || UdpSocket::bind(addr))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buffer) {
            let _ = socket.send_to(&buffer[..n], peer);
        }
    });
}

/// Opens a TCP connection from inside a namespace, sends `message` and
/// returns what comes back.
pub fn tcp_round_trip_from(netns_path: &Path, to: SocketAddr, message: &[u8]) -> Vec<u8> {
    let stream = netns::run_in(netns_path, move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(5))
    })
    .unwrap()
    .unwrap();
    round_trip(stream, message)
}

/// Sends `message` on a TCP stream and reads the same number of bytes back.
pub fn round_trip(mut stream: TcpStream, message: &[u8]) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(message).unwrap();
    let mut answer = vec![0u8; message.len()];
    stream.read_exact(&mut answer).unwrap();
    answer
}

/// Whether `ip` lies in `subnet`.
pub fn in_subnet(ip: Ipv4Addr, subnet: &str) -> bool {
    subnet.parse::<Ipv4Net>().unwrap().contains(&ip)
}

/// Waits up to 5 s for `condition`.
pub fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}
