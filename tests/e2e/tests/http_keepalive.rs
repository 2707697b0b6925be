//! HTTP correctness for keep-alive clients (docker-py, the Go SDK): a request answered
//! before its body was read (an early 400/404) must leave the connection usable, or be
//! answered with `Connection: close`, so the client's next write does not fail with
//! `EPIPE`. The client here sends the headers and the body in separate writes, as those
//! clients can. Also: dockerd's request compatibility (`Cmd` and `Entrypoint` as a
//! string, unknown fields ignored), a volume name too long for a directory (a 400) and
//! kill of a missing container (a 404 whatever the signal).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use vmrun_e2e::{require_root, Daemon};

/// Reads one response (headers and a `Content-Length` or chunked body) from `s`.
fn read_response(s: &mut UnixStream) -> std::io::Result<(u16, String, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed",
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        body.resize(len, 0);
        s.read_exact(&mut body)?;
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                s.read_exact(&mut byte)?;
                line.push(byte[0]);
            }
            let size =
                usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            s.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok((status, head, String::from_utf8_lossy(&body).into_owned()))
}

/// Sends `method path` with a JSON `body` in two writes (headers, then body after the
/// response had time to come), then a second request on the same connection.
fn early_answer_then_next(d: &Daemon, method: &str, path: &str, body: &str) {
    let mut s = UnixStream::connect(d.socket()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let early = match read_response(&mut s) {
        Ok(r) => Some(r),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("{method} {path}: the answer: {e}"),
    };
    // The body goes out after the answer (or after waiting for one): this write must not fail.
    std::thread::sleep(Duration::from_millis(200));
    let sent = s.write_all(body.as_bytes());
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (status, headers, text) = match early {
        Some(r) => r,
        None => read_response(&mut s).expect("the answer after the body"),
    };
    assert!(
        (400..500).contains(&status),
        "{method} {path}: {status} {text}"
    );
    let closes = headers.to_ascii_lowercase().contains("connection: close");
    if closes {
        // Told to close: the client opens a new connection; nothing more to check.
        return;
    }
    sent.unwrap_or_else(|e| panic!("{method} {path}: writing the body after a {status}: {e}"));
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        .unwrap_or_else(|e| panic!("{method} {path}: the next request after a {status}: {e}"));
    let (status, _, text) =
        read_response(&mut s).unwrap_or_else(|e| panic!("{method} {path}: the next response: {e}"));
    assert_eq!((status, text.as_str()), (200, "OK"));
}

#[test]
fn early_errors_keep_the_connection_usable() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let big = format!(
        "{{\"Image\":\"busybox\",\"Labels\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(200_000)
    );
    early_answer_then_next(&d, "POST", "/containers/create?name=bad%20name", &big);
    early_answer_then_next(&d, "POST", "/containers/nope/start", "{\"a\":1}");
    early_answer_then_next(&d, "POST", "/containers/nope/stop?t=x", &big);
    early_answer_then_next(&d, "DELETE", "/containers/json", &big);
    early_answer_then_next(&d, "POST", "/no/such/route", "{\"a\":1}");
    early_answer_then_next(&d, "POST", "/v1.45/containers/nope/update", &big);
    early_answer_then_next(
        &d,
        "PUT",
        "/containers/nope/archive?path=/",
        &"\0".repeat(100_000),
    );
    early_answer_then_next(&d, "POST", "/volumes/create", "{\"Name\": 12}");
}

#[test]
fn cmd_and_entrypoint_may_be_strings() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let res = d.api(
        "POST",
        "/containers/create?name=strcmd",
        Some(
            r#"{"Image":"busybox","Entrypoint":"echo","Cmd":"hello world","SomethingNew":{"x":1}}"#,
        ),
    );
    assert_eq!(res.status, 201, "{}", res.text());
    let c = d.inspect("strcmd");
    assert_eq!(c["Config"]["Entrypoint"], serde_json::json!(["echo"]));
    assert_eq!(c["Config"]["Cmd"], serde_json::json!(["hello world"]));
    let out = d.docker(&["start", "-a", "strcmd"]);
    out.ok();
    assert_eq!(out.stdout, "hello world\n", "{out}");
    let res = d.api(
        "POST",
        "/containers/create?name=strcmd2",
        Some(r#"{"Image":"busybox","Cmd":"true","HostConfig":{"Unknown":true,"Memory":0}}"#),
    );
    assert_eq!(res.status, 201, "{}", res.text());
}

#[test]
fn a_volume_name_too_long_is_a_400() {
    if !require_root() {
        return;
    }
    let d = Daemon::start_empty();
    let body = format!("{{\"Name\":\"{}\"}}", "v".repeat(300));
    let res = d.api("POST", "/volumes/create", Some(&body));
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(res.text().contains("too long"), "{}", res.text());
}

#[test]
fn kill_of_a_missing_container_is_a_404_whatever_the_signal() {
    if !require_root() {
        return;
    }
    let d = Daemon::start_empty();
    for query in ["signal=", "signal=BOGUS", "signal=9"] {
        let res = d.api("POST", &format!("/containers/nope/kill?{query}"), None);
        assert_eq!(res.status, 404, "{query}: {}", res.text());
        assert!(
            res.text().contains("No such container: nope"),
            "{}",
            res.text()
        );
    }
}

#[test]
fn responses_have_a_content_type_and_arrays_where_the_spec_has_them() {
    if !require_root() {
        return;
    }
    let d = Daemon::start_empty();
    let res = d.api("DELETE", "/info", None);
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("GET,HEAD"));
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.json()["message"], "method not allowed");
    d.api("POST", "/volumes/create", Some("{\"Name\":\"ct-check\"}"));
    let deleted = d.api("DELETE", "/volumes/ct-check", None);
    assert_eq!(deleted.status, 204);
    assert!(
        deleted.header("content-type").is_some(),
        "{:?}",
        deleted.headers
    );
    let info = d.api("GET", "/info", None).json();
    for key in [
        "AllowNondistributableArtifactsCIDRs",
        "AllowNondistributableArtifactsHostnames",
        "InsecureRegistryCIDRs",
    ] {
        assert!(
            info["RegistryConfig"][key].is_array(),
            "{key}: {}",
            info["RegistryConfig"]
        );
    }
}
