//! The desktop app (ui/src-tauri, Tauri 2 over WebKitGTK) in a real window: built on
//! Linux, started under Xvfb against a real vmrund with a container, and checked through
//! the app's own test hook (`VMRUN_DESKTOP_READY_FILE`: the containers view rendered with
//! data, and which rows) plus a screenshot of the screen (`$VMRUN_UI_SHOTS`, default
//! `/tmp/vmrun-ui-shots/desktop/window.png`). Skips with the reason where the WebKit
//! stack, Xvfb or node is missing. The first run builds the app in release (about 4
//! minutes on 2 cores; later runs reuse ~/.cache/vmrun/tauri-target).
//!
//! The tray icon: the app on a private D-Bus session bus, its menu read both from the
//! app's own hook (`VMRUN_DESKTOP_TRAY_FILE`) and from the `com.canonical.dbusmenu`
//! object libayatana-appindicator exports (what a desktop's status-notifier host shows
//! and clicks), kept current from the daemon's events, and a port link clicked through
//! D-Bus.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vmrun_e2e::dbus::{self, SessionBus};
use vmrun_e2e::ui::{build_desktop, missing_desktop_tools, DesktopBuild, Xvfb};
use vmrun_e2e::{free_port, require_root, Daemon};
use vmrun_test_skip::skip;

/// The app and its .deb, built once for all tests of this binary.
fn desktop_build() -> DesktopBuild {
    static BUILD: OnceLock<Result<DesktopBuild, String>> = OnceLock::new();
    BUILD
        .get_or_init(build_desktop)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `dpkg-deb ARGS`' stdout; panics on failure.
fn dpkg_deb(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("dpkg-deb: {e}"));
    assert!(
        out.status.success(),
        "dpkg-deb {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The app's binary as the .deb installs it, unpacked into `dir`.
fn unpack_deb(deb: &std::path::Path, dir: &std::path::Path) -> PathBuf {
    dpkg_deb(&[OsStr::new("-x"), deb.as_os_str(), dir.as_os_str()]);
    dir.join("usr/bin/vmrun-desktop")
}

#[test]
fn desktop_deb_holds_the_app() {
    if let Some(reason) = missing_desktop_tools() {
        skip!("{reason}");
    }
    let build = desktop_build();
    let deb = build.deb.as_os_str();
    let size = build.deb.metadata().map(|m| m.len()).unwrap_or(0);
    let listing = dpkg_deb(&[OsStr::new("-c"), deb]);
    for path in [
        "usr/bin/vmrun-desktop",
        "usr/share/applications/vmrun-desktop.desktop",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} is not in {}:\n{listing}",
            build.deb.display()
        );
    }
    let fields = dpkg_deb(&[
        OsStr::new("-f"),
        deb,
        OsStr::new("Package"),
        OsStr::new("Architecture"),
        OsStr::new("Depends"),
    ]);
    assert!(fields.contains("Package: vmrun-desktop"), "{fields}");
    assert!(fields.contains("libwebkit2gtk-4.1-0"), "{fields}");
    // Every library the packaged binary needs resolves here (the tray test runs it). It is
    // not byte for byte the built one: the bundler marks the package type in it.
    let dir = tempfile::tempdir().expect("temp dir");
    let packaged = unpack_deb(&build.deb, dir.path());
    let ldd = Command::new("ldd").arg(&packaged).output().expect("ldd");
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    assert!(!ldd.contains("not found"), "{ldd}");
    eprintln!("{}: {size} bytes\n{fields}", build.deb.display());
}

#[test]
fn desktop_window_renders_the_containers_view() {
    if !require_root() {
        return;
    }
    if let Some(reason) = missing_desktop_tools() {
        skip!("{reason}");
    }
    let app = desktop_build().binary;
    let d = Daemon::start();
    d.vmrun(&[
        "run",
        "-d",
        "--name",
        "ui-desk-a",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let x = Xvfb::start().unwrap_or_else(|e| panic!("{e}"));
    let shots = std::env::var_os("VMRUN_UI_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/vmrun-ui-shots"))
        .join("desktop");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let ready = d.dir().join("desktop-ready.json");
    let log = std::fs::File::create(d.dir().join("desktop.log")).expect("log file");
    let mut child = Command::new(&app)
        .env("DISPLAY", &x.display)
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        .env("VMRUN_HOST", d.host())
        .env("VMRUN_DESKTOP_READY_FILE", &ready)
        .env("NO_AT_BRIDGE", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", app.display()));
    let start = Instant::now();
    let hook = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                break Some(v);
            }
        }
        if child.try_wait().ok().flatten().is_some() || start.elapsed() > Duration::from_secs(60) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let png = shots.join("window.png");
    let shot = x.screenshot(&png);
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(d.dir().join("desktop.log")).unwrap_or_default();
    let hook = hook.unwrap_or_else(|| {
        panic!("the app never reported a rendered containers view; its log:\n{log}")
    });
    shot.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("desktop app: {hook}; screenshot {}", png.display());
    assert_eq!(hook["view"], "containers", "{hook}");
    assert!(
        hook["rows"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == "ui-desk-a")),
        "the container is not in the rendered view: {hook}\n{log}"
    );
    assert!(
        png.metadata().map(|m| m.len() > 10_000).unwrap_or(false),
        "empty screenshot"
    );
}

/// Polls `check` every 100 ms for up to `timeout`.
fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The labels and enabled flags of the hook's menu (separators left out).
fn hook_items(path: &std::path::Path) -> Option<Vec<(String, bool)>> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let items = v["items"].as_array()?;
    Some(
        items
            .iter()
            .filter(|i| i["kind"] == "item")
            .map(|i| {
                (
                    i["label"].as_str().unwrap_or_default().to_string(),
                    i["enabled"] == true,
                )
            })
            .collect(),
    )
}

/// The running app with its tray on a private session bus; dropping it kills it.
struct TrayApp {
    child: std::process::Child,
    log: PathBuf,
    hook: PathBuf,
    opened: PathBuf,
}

impl TrayApp {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the hook's menu satisfies `want`; panics with the log otherwise.
    fn wait_menu(
        &self,
        what: &str,
        want: impl Fn(&[(String, bool)]) -> bool,
    ) -> Vec<(String, bool)> {
        self.wait_menu_for(Duration::from_secs(30), what, want)
    }

    fn wait_menu_for(
        &self,
        timeout: Duration,
        what: &str,
        want: impl Fn(&[(String, bool)]) -> bool,
    ) -> Vec<(String, bool)> {
        poll(timeout, || {
            hook_items(&self.hook).filter(|items| want(items))
        })
        .unwrap_or_else(|| {
            panic!(
                "the tray menu never showed {what}; last: {:?}\napp log:\n{}",
                hook_items(&self.hook),
                self.log()
            )
        })
    }
}

impl Drop for TrayApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn desktop_tray_shows_vm_state_and_port_links() {
    if !require_root() {
        return;
    }
    if let Some(reason) = missing_desktop_tools().or_else(dbus::missing_tools) {
        skip!("{reason}");
    }
    let build = desktop_build();
    let mut d = Daemon::start();
    // A small shared VM, for the tray's Start VM (TCG guests are slow to fill).
    d.restart_with(&["--vm-memory", "512", "--vm-disk-size", "4"]);
    let (port_a, port_b) = (free_port(), free_port());
    let publish = |name: &str, port: u16| {
        d.vmrun(&[
            "run",
            "-d",
            "--name",
            name,
            "-p",
            &format!("{port}:80"),
            "busybox",
            "sleep",
            "300",
        ])
        .ok();
    };
    publish("ui-tray-a", port_a);
    let x = Xvfb::start().unwrap_or_else(|e| panic!("{e}"));
    let bus = SessionBus::start(d.dir()).unwrap_or_else(|e| panic!("{e}"));
    // The app opens a port link with `xdg-open URL`: a stand-in records the URL.
    let bin = d.dir().join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let opened = d.dir().join("opened.txt");
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\necho \"$1\" >> '{}'\n", opened.display()),
    )
    .expect("xdg-open stand-in");
    std::fs::set_permissions(&opener, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The app as its .deb installs it.
    let app = unpack_deb(&build.deb, &d.dir().join("pkg"));
    let log = d.dir().join("desktop-tray.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let hook = d.dir().join("tray.json");
    let child = Command::new(&app)
        .env("DISPLAY", &x.display)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("PATH", path)
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        .env("NO_AT_BRIDGE", "1")
        .env("VMRUN_HOST", d.host())
        .env("VMRUN_DESKTOP_TRAY_FILE", &hook)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("dup"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", app.display()));
    let started = Instant::now();
    let app = TrayApp {
        child,
        log,
        hook,
        opened,
    };

    // 1. The app's own view of its menu: the VM's state as the daemon reports it,
    //    start/stop enabled accordingly, the published port, show and quit.
    let vm = d.api("GET", "/vmrun/vm", None);
    let vm_state = serde_json::from_slice::<serde_json::Value>(&vm.body)
        .ok()
        .filter(|_| vm.status == 200)
        .and_then(|v| v["State"].as_str().map(str::to_string));
    let running = vm_state.as_deref() == Some("running");
    let link_a = format!("ui-tray-a → localhost:{port_a}");
    let items = app.wait_menu("the first container's port", |items| {
        items.iter().any(|(l, _)| *l == link_a)
    });
    eprintln!("tray menu after {:?}: {items:?}", started.elapsed());
    // Without the shared VM's endpoint the menu says so and has no Start/Stop VM.
    let mut expected = match &vm_state {
        Some(state) => vec![
            (format!("VM: {state}"), false),
            ("Start VM".to_string(), !running),
            ("Stop VM".to_string(), running),
        ],
        None => vec![("Daemon: running (no VM endpoints)".to_string(), false)],
    };
    expected.extend([
        (link_a.clone(), true),
        ("Show dashboard".to_string(), true),
        ("Quit".to_string(), true),
    ]);
    let link_index = expected.len() - 3;
    assert_eq!(items, expected, "{}", app.log());

    // 2. The same menu as the desktop shell sees it: exported on the session bus.
    let pid = app.child.id();
    let name = poll(Duration::from_secs(20), || bus.name_of_pid(pid))
        .unwrap_or_else(|| panic!("the app never joined the session bus; log:\n{}", app.log()));
    let menu_path = poll(Duration::from_secs(20), || {
        bus.objects_with(&name, "com.canonical.dbusmenu")
            .into_iter()
            .next()
    })
    .unwrap_or_else(|| {
        panic!(
            "no com.canonical.dbusmenu object on {name}; log:\n{}",
            app.log()
        )
    });
    let exported = |want: &[(String, bool)]| {
        poll(Duration::from_secs(20), || {
            let layout = bus
                .call(
                    &name,
                    &menu_path,
                    "com.canonical.dbusmenu.GetLayout",
                    &["0", "-1", "[]"],
                )
                .ok()?;
            let items = dbus::menu_items(&layout);
            let seen: Vec<(String, bool)> = items
                .iter()
                .filter(|i| !i.separator)
                .map(|i| (i.label.clone(), i.enabled))
                .collect();
            (seen == want).then_some(items)
        })
        .unwrap_or_else(|| {
            let layout = bus.call(
                &name,
                &menu_path,
                "com.canonical.dbusmenu.GetLayout",
                &["0", "-1", "[]"],
            );
            panic!(
                "the exported menu is not {want:?}: {layout:?}\nlog:\n{}",
                app.log()
            )
        })
    };
    let dbus_items = exported(&expected);
    eprintln!("dbusmenu {menu_path} on {name}: {dbus_items:?}");
    // The status-notifier item a host registers points at that menu and is active.
    let item = bus
        .objects_with(&name, "org.kde.StatusNotifierItem")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no org.kde.StatusNotifierItem on {name}"));
    let property = |key: &str| {
        bus.call(
            &name,
            &item,
            "org.freedesktop.DBus.Properties.Get",
            &["org.kde.StatusNotifierItem", key],
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let menu_prop = property("Menu");
    assert!(menu_prop.contains(&format!("'{menu_path}'")), "{menu_prop}");
    let status = property("Status");
    assert!(status.contains("'Active'"), "{status}");

    // 3. Clicking the port link through D-Bus opens the container's URL.
    let link = dbus_items
        .iter()
        .find(|i| i.label == link_a)
        .expect("link item");
    bus.call(
        &name,
        &menu_path,
        "com.canonical.dbusmenu.Event",
        &[&link.id.to_string(), "'clicked'", "<''>", "0"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://localhost:{port_a}");
    poll(Duration::from_secs(10), || {
        std::fs::read_to_string(&app.opened)
            .ok()
            .filter(|t| t.lines().any(|l| l == url))
    })
    .unwrap_or_else(|| {
        panic!(
            "clicking {link_a:?} did not open {url}; log:\n{}",
            app.log()
        )
    });

    // 4. Kept current from the daemon's events: a second container's port appears, a
    //    removed container's port goes, in the hook and on the bus.
    publish("ui-tray-b", port_b);
    let link_b = format!("ui-tray-b → localhost:{port_b}");
    app.wait_menu("the second container's port", |items| {
        items.iter().any(|(l, _)| *l == link_b)
    });
    d.vmrun(&["rm", "-f", "ui-tray-a"]).ok();
    let items = app.wait_menu("the first container's port gone", |items| {
        !items.iter().any(|(l, _)| *l == link_a)
    });
    let mut expected_after = expected.clone();
    expected_after[link_index] = (link_b, true);
    assert_eq!(items, expected_after, "{}", app.log());
    exported(&expected_after);

    // 5. Start VM and Stop VM clicked through D-Bus: the daemon's shared VM boots and
    //    stops, and the menu follows (the daemon sends no event for these: the app
    //    refreshes after its own action).
    match vm_state.as_deref() {
        Some("running") => {
            eprintln!("the shared VM was already running: Start VM not clicked");
            return;
        }
        None => {
            let why = String::from_utf8_lossy(&vm.body).into_owned();
            vmrun_test_skip::report(format_args!(
                "the tray's VM items not clicked: GET /vmrun/vm answered {}: {why}",
                vm.status
            ));
            return;
        }
        Some(_) => {}
    }
    let click = |label: &str| {
        let item = exported(&app.wait_menu("the current menu", |_| true))
            .into_iter()
            .find(|i| i.label == label)
            .unwrap_or_else(|| panic!("no {label:?} item"));
        assert!(item.enabled, "{label:?} is disabled");
        bus.call(
            &name,
            &menu_path,
            "com.canonical.dbusmenu.Event",
            &[&item.id.to_string(), "'clicked'", "<''>", "0"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    };
    let clicked = Instant::now();
    click("Start VM");
    let vm_is = |state: &str| {
        let status = format!("VM: {state}");
        move |items: &[(String, bool)]| items.first().is_some_and(|(l, _)| *l == status)
    };
    let settled = poll(Duration::from_secs(180), || {
        hook_items(&app.hook)
            .filter(|items| vm_is("running")(items) || app.log().contains("/vmrun/vm/start: "))
    });
    if settled.is_some_and(|items| !vm_is("running")(&items)) {
        let log = app.log();
        let why = log
            .lines()
            .find(|l| l.contains("/vmrun/vm/start: "))
            .unwrap_or_default();
        vmrun_test_skip::report(format_args!(
            "the tray's Start VM was clicked but this host cannot run the shared VM ({why})"
        ));
        return;
    }
    let items = app.wait_menu("VM: running", vm_is("running"));
    eprintln!(
        "VM running {:?} after the click: {items:?}",
        clicked.elapsed()
    );
    let vm: serde_json::Value =
        serde_json::from_slice(&d.api("GET", "/vmrun/vm", None).body).expect("GET /vmrun/vm");
    assert_eq!(vm["State"], "running", "{vm}");
    let mut expected_running = expected_after.clone();
    expected_running[0] = ("VM: running".to_string(), false);
    expected_running[1] = ("Start VM".to_string(), false);
    expected_running[2] = ("Stop VM".to_string(), true);
    assert_eq!(items, expected_running, "{}", app.log());
    exported(&expected_running);
    click("Stop VM");
    app.wait_menu_for(Duration::from_secs(120), "VM: stopped", vm_is("stopped"));
    exported(&expected_after);
    eprintln!("tray checks done in {:?}", started.elapsed());
}
