//! Published ports reachable from the host; containers on a user network reach each other.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use vmrun_e2e::{free_port, require_root, Daemon};

/// One HTTP/1.0 GET to 127.0.0.1:port; the whole response, or the last error.
fn http_get(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).map_err(|e| e.to_string())?;
    Ok(reply)
}

#[test]
fn published_port_is_reachable_from_the_host() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    d.vmrun(&[
        "run", "-d", "--name", "web", "-p", &publish, "busybox", "sh", "-c",
        "mkdir -p /www && echo hello-from-container > /www/index.html && exec httpd -f -p 80 -h /www",
    ])
    .ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        match http_get(port) {
            Ok(r) if r.contains("hello-from-container") => break r,
            other if Instant::now() >= deadline => {
                panic!(
                    "no reply through 127.0.0.1:{port}: {other:?}\n{}",
                    d.log_tail(30)
                )
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(reply.starts_with("HTTP/1."), "{reply}");

    let port_out = d.vmrun(&["ps", "--format", "{{.Ports}}"]);
    port_out.ok();
    assert!(
        port_out
            .stdout
            .contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{port_out}"
    );
    let inspect = d.inspect("web");
    assert_eq!(
        inspect["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        port.to_string()
    );

    // After rm the port is released.
    d.vmrun(&["rm", "-f", "web"]).ok();
    vmrun_e2e::wait_for(Duration::from_secs(3), "the port to be released", || {
        std::net::TcpListener::bind(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    });
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.vmrun(&["network", "create", "e2enet"]).ok();
    let ls = d.vmrun(&["network", "ls", "--format", "{{.Name}}"]);
    ls.ok();
    assert!(ls.stdout.lines().any(|l| l == "e2enet"), "{ls}");

    for name in ["peer-a", "peer-b"] {
        d.vmrun(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "e2enet",
            "busybox",
            "sh",
            "-c",
            "echo pong-$(hostname) > /reply; exec nc -ll -p 7000 -e cat /reply",
        ])
        .ok();
    }
    let ping = d.vmrun(&["exec", "peer-a", "ping", "-c1", "-W2", "peer-b"]);
    ping.ok();
    assert!(ping.stdout.contains("1 packets received"), "{ping}");
    let ping = d.vmrun(&["exec", "peer-b", "ping", "-c1", "-W2", "peer-a"]);
    ping.ok();

    // TCP by name from a third, short-lived container.
    let out = d.vmrun(&[
        "run", "--rm", "--network", "e2enet", "busybox", "sh", "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do nc -w 2 peer-b 7000 </dev/null && exit 0; sleep 0.2; done; exit 1",
    ]);
    out.ok();
    assert!(out.stdout.starts_with("pong-"), "{out}");

    // A container on the default bridge cannot resolve them.
    let out = d.vmrun(&["run", "--rm", "busybox", "ping", "-c1", "-W1", "peer-a"]);
    assert!(!out.success(), "{out}");

    d.vmrun(&["rm", "-f", "peer-a", "peer-b"]).ok();
    d.vmrun(&["network", "rm", "e2enet"]).ok();
    let ls = d.vmrun(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.stdout.lines().any(|l| l == "e2enet"), "{ls}");
}
