//! The Docker Engine API through raw HTTP on the daemon's socket.

use std::time::{Duration, Instant};

use vmrun_e2e::{require_root, Daemon};

fn message(r: &vmrun_e2e::ApiResponse) -> String {
    r.json()["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {}", r.text()))
        .to_string()
}

#[test]
fn malformed_json_is_a_400_and_the_daemon_keeps_serving() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    for body in [
        r#"{"Image": "busybox", "Cmd": ["#,
        "not json at all",
        r#"{"Image": 5}"#,
    ] {
        let r = d.api("POST", "/v1.45/containers/create", Some(body));
        assert_eq!(r.status, 400, "body {body:?}: {}", r.text());
        assert!(!message(&r).is_empty());
    }
    let ping = d.api("GET", "/_ping", None);
    assert_eq!(ping.status, 200);
    assert_eq!(ping.text(), "OK");
    let list = d.api("GET", "/v1.45/containers/json?all=1", None);
    assert_eq!(list.status, 200);
    assert_eq!(list.json(), serde_json::json!([]), "nothing was created");
}

#[test]
fn unknown_container_is_a_404_with_dockers_message() {
    if !require_root() {
        return;
    }
    let d = Daemon::start_empty();
    for (method, path) in [
        ("GET", "/v1.45/containers/x/json"),
        ("POST", "/v1.45/containers/x/start"),
        ("POST", "/v1.45/containers/x/stop"),
        ("DELETE", "/v1.45/containers/x"),
        ("GET", "/v1.45/containers/x/logs?stdout=1"),
    ] {
        let r = d.api(method, path, None);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        assert_eq!(message(&r), "No such container: x", "{method} {path}");
    }
}

#[test]
fn removing_a_running_container_needs_force() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let r = d.api(
        "POST",
        "/v1.45/containers/create?name=busy",
        Some(r#"{"Image":"busybox","Cmd":["sleep","300"]}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["Id"].as_str().unwrap().to_string();
    let r = d.api("POST", &format!("/v1.45/containers/{id}/start"), None);
    assert_eq!(r.status, 204, "{}", r.text());

    let r = d.api("DELETE", "/v1.45/containers/busy", None);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(message(&r).contains("running"), "{}", r.text());
    assert_eq!(d.state("busy").as_deref(), Some("running"));

    let r = d.api("DELETE", "/v1.45/containers/busy?force=1", None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(d.state("busy"), None);
}

#[test]
fn version_reports_the_api_version() {
    if !require_root() {
        return;
    }
    let d = Daemon::start_empty();
    let r = d.api("GET", "/version", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["ApiVersion"], "1.45", "{v}");
    assert!(v["MinAPIVersion"].is_string(), "{v}");
    assert_eq!(v["Os"], "linux");
    assert!(
        r.header("api-version").is_some(),
        "Api-Version header: {:?}",
        r.headers
    );
}

#[test]
fn versioned_and_unversioned_paths_both_work() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    for prefix in ["", "/v1.45", "/v1.41"] {
        let ping = d.api("GET", &format!("{prefix}/_ping"), None);
        assert_eq!(ping.status, 200, "{prefix}/_ping");
        let list = d.api("GET", &format!("{prefix}/containers/json"), None);
        assert_eq!(
            list.status,
            200,
            "{prefix}/containers/json: {}",
            list.text()
        );
        assert!(list.json().is_array());
        let images = d.api("GET", &format!("{prefix}/images/json"), None);
        assert_eq!(
            images.status,
            200,
            "{prefix}/images/json: {}",
            images.text()
        );
        let tags = images.json()[0]["RepoTags"].clone();
        assert_eq!(tags, serde_json::json!(["busybox:latest"]), "{prefix}");
    }
}

#[test]
fn image_inspect_and_history_have_dockerds_shape() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let r = d.api("GET", "/v1.45/images/busybox/json", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let config = &v["Config"];
    for field in [
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "Tty",
        "OpenStdin",
        "StdinOnce",
    ] {
        assert_eq!(config[field], false, "{field}: {config}");
    }
    for field in ["Hostname", "Domainname", "Image"] {
        assert_eq!(config[field], "", "{field}: {config}");
    }
    assert_eq!(config["Cmd"], serde_json::json!(["sh"]), "{config}");
    assert!(
        config.get("ExposedPorts").is_none(),
        "omitted when unset: {config}"
    );
    let upper = v["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap_or_default();
    assert!(
        std::path::Path::new(upper).join("bin/busybox").is_file(),
        "UpperDir {upper:?} is not the image's layer: {v}"
    );

    let h = d.api("GET", "/v1.45/images/busybox/history", None);
    assert_eq!(h.status, 200, "{}", h.text());
    let entries = h.json();
    let newest = &entries[0];
    assert_eq!(newest["Id"], v["Id"], "{entries}");
    assert_eq!(
        newest["Tags"],
        serde_json::json!(["busybox:latest"]),
        "{entries}"
    );
    assert_eq!(newest["Size"], v["Size"], "{entries}");
    let missing = d.api("GET", "/v1.45/images/nope/history", None);
    assert_eq!(missing.status, 404, "{}", missing.text());
}

#[test]
fn wait_next_exit_returns_the_next_exit_code() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let r = d.api(
        "POST",
        "/containers/create?name=waited",
        Some(r#"{"Image":"busybox","Cmd":["sh","-c","sleep 0.3; exit 5"]}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // Registered before the container ever ran: it must wait for the run below.
    let pending = d.api_send(
        "POST",
        "/v1.45/containers/waited/wait?condition=next-exit",
        None,
    );
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let r = d.api("POST", "/containers/waited/start", None);
    assert_eq!(r.status, 204, "{}", r.text());
    let done = pending.finish();
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["StatusCode"], 5, "{}", done.text());
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "returned before the exit"
    );

    // not-running on an exited container answers at once.
    let r = d.api(
        "POST",
        "/containers/waited/wait?condition=not-running",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["StatusCode"], 5);

    // next-exit on an exited container waits for the next run, not the last one.
    let pending = d.api_send("POST", "/containers/waited/wait?condition=next-exit", None);
    std::thread::sleep(Duration::from_millis(200));
    let r = d.api("POST", "/containers/waited/start", None);
    assert_eq!(r.status, 204, "{}", r.text());
    let done = pending.finish();
    assert_eq!(done.json()["StatusCode"], 5, "{}", done.text());
}

#[test]
fn logs_endpoint_frames_stdout_and_stderr() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.vmrun(&[
        "run",
        "--name",
        "framed",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ])
    .ok();
    let r = d.api("GET", "/containers/framed/logs?stdout=1&stderr=1", None);
    assert_eq!(r.status, 200, "{}", r.text());
    // Docker's multiplexed stream: [stream, 0, 0, 0, len(be32)] + payload.
    let mut frames = Vec::new();
    let mut body = r.body.as_slice();
    while body.len() >= 8 {
        let len = u32::from_be_bytes([body[4], body[5], body[6], body[7]]) as usize;
        frames.push((
            body[0],
            String::from_utf8_lossy(&body[8..8 + len]).into_owned(),
        ));
        body = &body[8 + len..];
    }
    assert!(body.is_empty(), "trailing bytes: {body:?}");
    frames.sort();
    assert_eq!(
        frames,
        vec![(1, "out\n".to_string()), (2, "err\n".to_string())]
    );
}
