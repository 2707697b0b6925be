//! The desktop app's tray menu as data: what the daemon's Docker-compatible API says
//! ([`Snapshot`]: daemon up, the shared VM's state from vmrund's `/vmrun/vm`, the
//! published TCP ports of running containers) and the menu items made from it
//! ([`menu_items`]). The Tauri shell turns the items into its native tray menu and, as
//! a test hook, writes them out as JSON, so the menu's content is tested here and end
//! to end without a desktop shell.

use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Serialize;

use crate::daemon::DaemonClient;

/// Menu item ids with an action (`open:<url>` items open a container's port).
pub const ID_STATUS: &str = "status";
/// Starts the shared VM (`POST /vmrun/vm/start`).
pub const ID_VM_START: &str = "vm-start";
/// Stops the shared VM (`POST /vmrun/vm/stop`).
pub const ID_VM_STOP: &str = "vm-stop";
/// Shows the dashboard window.
pub const ID_SHOW: &str = "show";
/// Quits the app.
pub const ID_QUIT: &str = "quit";
/// The prefix of a port link's id; the URL follows it.
pub const OPEN_PREFIX: &str = "open:";

/// One published port of a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortLink {
    /// The container's name (without the leading `/`).
    pub container: String,
    /// The host port.
    pub port: u16,
}

impl PortLink {
    /// The URL the item opens.
    pub fn url(&self) -> String {
        format!("http://localhost:{}", self.port)
    }
}

/// What the tray shows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Whether `GET /containers/json` answered.
    pub daemon_up: bool,
    /// The shared VM's `State` (`GET /vmrun/vm`); `None` on a daemon without it (dockerd).
    pub vm_state: Option<String>,
    /// Running containers' published TCP ports, one per (container, host port).
    pub links: Vec<PortLink>,
}

/// One entry of the menu, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MenuEntry {
    /// A clickable (or greyed) item.
    Item {
        /// The action id.
        id: String,
        /// The text shown.
        label: String,
        /// Whether it can be clicked.
        enabled: bool,
    },
    /// A separator line.
    Separator,
}

fn item(id: impl Into<String>, label: impl Into<String>, enabled: bool) -> MenuEntry {
    MenuEntry::Item {
        id: id.into(),
        label: label.into(),
        enabled,
    }
}

/// The menu for a snapshot: status line, VM start/stop (only where the daemon has a
/// shared VM), one link per published port, "Show dashboard", "Quit".
pub fn menu_items(s: &Snapshot) -> Vec<MenuEntry> {
    let status = match (s.daemon_up, &s.vm_state) {
        (false, _) => "Daemon: not running".to_string(),
        (true, Some(state)) => format!("VM: {state}"),
        (true, None) => "Daemon: running (no VM endpoints)".to_string(),
    };
    let mut items = vec![item(ID_STATUS, status, false)];
    if let Some(state) = &s.vm_state {
        let running = state == "running";
        items.push(item(ID_VM_START, "Start VM", !running));
        items.push(item(ID_VM_STOP, "Stop VM", running));
    }
    if !s.links.is_empty() {
        items.push(MenuEntry::Separator);
        for link in &s.links {
            items.push(item(
                format!("{OPEN_PREFIX}{}", link.url()),
                format!("{} → localhost:{}", link.container, link.port),
                true,
            ));
        }
    }
    items.push(MenuEntry::Separator);
    items.push(item(ID_SHOW, "Show dashboard", true));
    items.push(item(ID_QUIT, "Quit", true));
    items
}

/// The tooltip for a snapshot.
pub fn tooltip(s: &Snapshot) -> String {
    if s.daemon_up {
        format!("vmrun: VM {}", s.vm_state.as_deref().unwrap_or("n/a"))
    } else {
        "vmrun: daemon not running".into()
    }
}

/// The port links of a `GET /containers/json` answer (running containers only, as that
/// endpoint lists by default): TCP ports with a host port, each once per container.
pub fn port_links(containers: &serde_json::Value) -> Vec<PortLink> {
    let mut links = Vec::new();
    for c in containers.as_array().into_iter().flatten() {
        if c["State"].as_str().is_some_and(|s| s != "running") {
            continue;
        }
        let name = c["Names"][0]
            .as_str()
            .unwrap_or("?")
            .trim_start_matches('/')
            .to_string();
        let mut ports: Vec<u16> = c["Ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["Type"].as_str() == Some("tcp"))
            .filter_map(|p| p["PublicPort"].as_u64())
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        links.extend(ports.into_iter().map(|port| PortLink {
            container: name.clone(),
            port,
        }));
    }
    links
}

async fn get_json(client: &DaemonClient, path: &str) -> Option<serde_json::Value> {
    let r = client.request("GET", path, &[], Bytes::new()).await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    let body = r.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

/// Asks the daemon for the current snapshot (a daemon that does not answer is down).
pub async fn snapshot(client: &DaemonClient) -> Snapshot {
    let Some(containers) = get_json(client, "/containers/json").await else {
        return Snapshot::default();
    };
    let vm_state = get_json(client, "/vmrun/vm")
        .await
        .and_then(|v| v["State"].as_str().map(str::to_string));
    Snapshot {
        daemon_up: true,
        vm_state,
        links: port_links(&containers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(items: &[MenuEntry]) -> Vec<String> {
        items
            .iter()
            .map(|e| match e {
                MenuEntry::Item { label, enabled, .. } => {
                    format!("{label}{}", if *enabled { "" } else { " (off)" })
                }
                MenuEntry::Separator => "--".into(),
            })
            .collect()
    }

    #[test]
    fn port_links_keep_running_tcp_ports_once() {
        let list = json!([
            {"Names": ["/web"], "State": "running", "Ports": [
                {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "0.0.0.0"},
                {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "::"},
                {"PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
                {"PrivatePort": 81, "PublicPort": 7000, "Type": "tcp"},
                {"PrivatePort": 9000, "Type": "tcp"}
            ]},
            {"Names": ["/old"], "State": "exited", "Ports": [{"PublicPort": 9, "Type": "tcp"}]},
            {"Names": ["/quiet"], "State": "running", "Ports": []}
        ]);
        let links = port_links(&list);
        assert_eq!(
            links,
            vec![
                PortLink {
                    container: "web".into(),
                    port: 7000
                },
                PortLink {
                    container: "web".into(),
                    port: 8080
                },
            ]
        );
        assert_eq!(links[1].url(), "http://localhost:8080");
    }

    #[test]
    fn menu_for_a_stopped_vm_with_a_port() {
        let s = Snapshot {
            daemon_up: true,
            vm_state: Some("stopped".into()),
            links: vec![PortLink {
                container: "web".into(),
                port: 8080,
            }],
        };
        assert_eq!(
            labels(&menu_items(&s)),
            [
                "VM: stopped (off)",
                "Start VM",
                "Stop VM (off)",
                "--",
                "web → localhost:8080",
                "--",
                "Show dashboard",
                "Quit"
            ]
        );
        let ids: Vec<_> = menu_items(&s)
            .into_iter()
            .filter_map(|e| match e {
                MenuEntry::Item { id, .. } => Some(id),
                MenuEntry::Separator => None,
            })
            .collect();
        assert!(ids.contains(&"open:http://localhost:8080".to_string()));
        assert_eq!(tooltip(&s), "vmrun: VM stopped");
    }

    #[test]
    fn menu_for_a_running_vm_and_for_other_daemons() {
        let running = Snapshot {
            daemon_up: true,
            vm_state: Some("running".into()),
            links: vec![],
        };
        assert_eq!(
            labels(&menu_items(&running)),
            [
                "VM: running (off)",
                "Start VM (off)",
                "Stop VM",
                "--",
                "Show dashboard",
                "Quit"
            ]
        );
        let dockerd = Snapshot {
            daemon_up: true,
            ..Snapshot::default()
        };
        assert_eq!(
            labels(&menu_items(&dockerd))[0],
            "Daemon: running (no VM endpoints) (off)"
        );
        assert_eq!(
            labels(&menu_items(&Snapshot::default()))[0],
            "Daemon: not running (off)"
        );
        assert_eq!(tooltip(&Snapshot::default()), "vmrun: daemon not running");
    }
}
