//! A private D-Bus session bus for GUI tests (`dbus-daemon --session` on a socket in a
//! test's directory) and the few calls the tray test makes on it with `gdbus`: whose
//! unique name a process holds, which object implements an interface, method calls.
//! The tray's menu is exported there by libayatana-appindicator as `com.canonical.dbusmenu`,
//! the interface a desktop's status-notifier host reads and clicks through.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::command::run_with_timeout;
use crate::env::has_tool;

/// Why a private session bus cannot be used here, if it cannot.
pub fn missing_tools() -> Option<String> {
    ["dbus-daemon", "gdbus"]
        .into_iter()
        .find(|t| !has_tool(t))
        .map(|t| format!("{t} not installed (installer/packages.sh: VMRUN_TAURI_PACKAGES)"))
}

/// A running private session bus; dropping it stops it.
pub struct SessionBus {
    child: Child,
    /// Its address, for `DBUS_SESSION_BUS_ADDRESS`.
    pub address: String,
}

impl SessionBus {
    /// Starts one listening on `dir/bus`.
    pub fn start(dir: &Path) -> Result<SessionBus, String> {
        let socket = dir.join("bus");
        let mut child = Command::new("dbus-daemon")
            .arg("--session")
            .arg("--nofork")
            .arg("--print-address=1")
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Its notes (service activations by WebKit, the fd limit) are noise here.
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting dbus-daemon: {e}"))?;
        let stdout = child.stdout.take().ok_or("dbus-daemon: no stdout")?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let address = line.trim().to_string();
        let bus = SessionBus { child, address };
        match read {
            Ok(_) if bus.address.starts_with("unix:") => Ok(bus),
            Ok(_) => Err(format!("dbus-daemon printed {:?}", bus.address)),
            Err(e) => Err(format!("reading dbus-daemon's address: {e}")),
        }
    }

    /// `gdbus call` on this bus; its stdout (GVariant text), or the failure.
    pub fn call(
        &self,
        dest: &str,
        path: &str,
        method: &str,
        args: &[&str],
    ) -> Result<String, String> {
        let mut cmd = Command::new("gdbus");
        cmd.args(["call", "--address", &self.address, "--dest", dest])
            .args(["--object-path", path, "--method", method, "--"])
            .args(args);
        let out = run_with_timeout(cmd, None, Duration::from_secs(10));
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(format!("gdbus call {dest} {path} {method}: {out}"))
        }
    }

    /// The unique name (`:1.N`) held by process `pid`, if any.
    pub fn name_of_pid(&self, pid: u32) -> Option<String> {
        let bus = ("org.freedesktop.DBus", "/org/freedesktop/DBus");
        let names = self
            .call(bus.0, bus.1, "org.freedesktop.DBus.ListNames", &[])
            .ok()?;
        quoted_strings(&names)
            .into_iter()
            .filter(|n| n.starts_with(':'))
            .find(|n| {
                self.call(
                    bus.0,
                    bus.1,
                    "org.freedesktop.DBus.GetConnectionUnixProcessID",
                    &[n],
                )
                .is_ok_and(|out| out.contains(&format!("uint32 {pid}")))
            })
    }

    /// The object paths under `/` of `dest` that implement `interface`.
    pub fn objects_with(&self, dest: &str, interface: &str) -> Vec<String> {
        let mut cmd = Command::new("gdbus");
        cmd.args(["introspect", "--address", &self.address, "--dest", dest])
            .args(["--object-path", "/", "--recurse", "--only-properties"]);
        let out = run_with_timeout(cmd, None, Duration::from_secs(10));
        let mut found = Vec::new();
        let mut node = None;
        for line in out.stdout.lines().map(str::trim) {
            if let Some(path) = line.strip_prefix("node ") {
                node = Some(path.trim_end_matches(" {").to_string());
            } else if line == format!("interface {interface} {{") {
                found.extend(node.clone());
            }
        }
        found
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The single-quoted strings of a GVariant text, in order (`\'` and `\\` unescaped).
pub fn quoted_strings(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => s.extend(chars.next()),
                '\'' => break,
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// One item of a `com.canonical.dbusmenu.GetLayout` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuItem {
    /// Its dbusmenu id (what `Event` takes).
    pub id: i32,
    /// Its label (mnemonic underscores removed); empty for separators.
    pub label: String,
    /// False when the item carries `'enabled': <false>`.
    pub enabled: bool,
    /// True for `'type': <'separator'>`.
    pub separator: bool,
}

/// The top-level items of a `GetLayout` answer as gdbus prints it:
/// `(uint32 REV, (0, {...}, [<(ID, {'label': <'…'>, …}, @av [])>, …]),)`.
pub fn menu_items(layout: &str) -> Vec<MenuItem> {
    let mut items = Vec::new();
    for part in layout.split("<(").skip(1) {
        let Some((id, rest)) = part.split_once(',') else {
            continue;
        };
        let Ok(id) = id.trim().parse::<i32>() else {
            continue;
        };
        let props = rest.split_once('}').map_or(rest, |(p, _)| p);
        let strings = quoted_strings(props);
        let value_of = |key: &str| {
            strings
                .iter()
                .position(|s| s == key)
                .and_then(|i| strings.get(i + 1))
                .cloned()
        };
        let label = value_of("label").unwrap_or_default();
        items.push(MenuItem {
            id,
            label: strip_mnemonics(&label),
            enabled: !props.contains("'enabled': <false>"),
            separator: value_of("type").as_deref() == Some("separator"),
        });
    }
    items
}

/// GTK's mnemonic form back to text: `_x` → `x`, `__` → `_`.
fn strip_mnemonics(label: &str) -> String {
    let mut out = String::new();
    let mut chars = label.chars();
    while let Some(c) = chars.next() {
        if c == '_' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dbusmenu_layout() {
        let text = "(uint32 5, (0, {'children-display': <'submenu'>}, [<(1, {'label': <'VM: stopped'>, 'enabled': <false>}, @av [])>, <(2, {'label': <'Start VM'>}, @av [])>, <(3, {'type': <'separator'>}, @av [])>, <(4, {'label': <'web\\'s → localhost:80'>}, @av [])>, <(5, {'label': <'Show _dashboard'>}, @av [])>]))\n";
        let items = menu_items(text);
        let labels: Vec<_> = items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "VM: stopped",
                "Start VM",
                "",
                "web's → localhost:80",
                "Show dashboard"
            ]
        );
        assert!(!items[0].enabled && items[1].enabled);
        assert!(items[2].separator && !items[1].separator);
        assert_eq!(items[4].id, 5);
    }

    #[test]
    fn quoted_strings_unescape() {
        assert_eq!(quoted_strings("('a', 'b\\'c', \"x\")"), ["a", "b'c"]);
    }
}
