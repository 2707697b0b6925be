//! The agent on this host (`--listen unix:`), driven through the wire protocol: real
//! containers from a busybox layer (exit codes, attach streams with stdin, exec, kill, top,
//! stats, logs), and bad input (garbage, malformed and oversized frames, wrong version).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{demux, process, send_stdin, spec, HostAgent};
use vmrun_agent_protocol::frame::{read_frame, write_frame, HEADER_LEN};
use vmrun_agent_protocol::{
    CreateContainer, CreateExec, ErrorKind, Hello, HelloReply, Op, Reply, Request, Response,
    RootfsSpec, StreamTarget, MAX_FRAME_LEN, PROTOCOL_VERSION,
};

macro_rules! skip_unless_possible {
    () => {
        if let Some(why) = common::skip_reason() {
            vmrun_test_skip::report(format_args!("{why}"));
            return;
        }
    };
}

fn create(agent: &HostAgent, id: &str, args: &[&str], open_stdin: bool) -> Op {
    Op::Create(Box::new(CreateContainer {
        id: id.into(),
        spec: spec(&agent.unique(), id, args, false),
        rootfs: RootfsSpec {
            layers: vec![agent.layer()],
            writable: None,
        },
        user: None,
        tty: false,
        open_stdin,
        stdin_once: open_stdin,
        console_size: None,
        log_path: None,
        log_rotation: None,
        etc_files: None,
    }))
}

fn attach(id: &str, stdin: bool) -> StreamTarget {
    StreamTarget::Attach {
        id: id.into(),
        stdin,
        stdout: true,
        stderr: true,
    }
}

#[test]
fn a_rotating_log_is_streamed_whole_across_rotations() {
    skip_unless_possible!();
    let agent = HostAgent::start();
    let mut c = agent.conn();
    let Op::Create(mut req) = create(
        &agent,
        "rot",
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done",
        ],
        false,
    ) else {
        unreachable!()
    };
    // About 22 KB of records in 2 KiB files: about ten rotations, every file kept.
    req.log_rotation = Some(vmrun_agent_protocol::LogRotation {
        max_size: 2048,
        max_files: 20,
    });
    c.ok(Op::Create(req));
    let logs = agent
        .stream(StreamTarget::Logs {
            id: "rot".into(),
            follow: true,
        })
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut logs = logs;
        let mut text = String::new();
        logs.read_to_string(&mut text).map(|_| text)
    });
    c.ok(Op::Start { id: "rot".into() });
    let Reply::Exited(exit) = c.ok(Op::Wait { id: "rot".into() }) else {
        panic!()
    };
    assert_eq!(exit.exit_code, 0);
    let streamed = reader.join().unwrap().expect("reading the log stream");
    let lines: Vec<String> = streamed
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a json-file record");
            v["log"].as_str().unwrap_or_default().trim_end().to_string()
        })
        .collect();
    let expected: Vec<String> = (0..300).map(|i| format!("line-{i}")).collect();
    assert_eq!(lines, expected, "every line once, in order");
    // It did rotate: the current file holds only the last few.
    let Reply::Logs { content } = c.ok(Op::Logs { id: "rot".into() }) else {
        panic!()
    };
    let current = content.lines().count();
    assert!(
        (1..100).contains(&current),
        "{current} records in the current file: no rotation"
    );
}

#[test]
fn container_runs_with_exit_code_output_and_logs() {
    skip_unless_possible!();
    let agent = HostAgent::start();
    let mut c = agent.conn();
    assert_eq!(c.ok(Op::Ping), Reply::Pong);
    let Reply::Version { protocol, .. } = c.ok(Op::Version) else {
        panic!()
    };
    assert_eq!(protocol, PROTOCOL_VERSION);

    c.ok(create(
        &agent,
        "c1",
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        false,
    ));
    let stream = agent.stream(attach("c1", false)).unwrap();
    let reader = std::thread::spawn(move || demux(stream));
    let Reply::Started { pid } = c.ok(Op::Start { id: "c1".into() }) else {
        panic!()
    };
    assert!(pid > 0);
    let Reply::Exited(exit) = c.ok(Op::Wait { id: "c1".into() }) else {
        panic!()
    };
    assert_eq!(exit.exit_code, 3);
    let (out, err) = reader.join().unwrap();
    assert_eq!(out, "out\n");
    assert_eq!(err, "err\n");

    let Reply::Logs { content } = c.ok(Op::Logs { id: "c1".into() }) else {
        panic!()
    };
    assert!(
        content.contains(r#""log":"out\n","stream":"stdout""#),
        "{content}"
    );
    assert!(
        content.contains(r#""log":"err\n","stream":"stderr""#),
        "{content}"
    );
    let mut logs = agent
        .stream(StreamTarget::Logs {
            id: "c1".into(),
            follow: true,
        })
        .unwrap();
    let mut streamed = String::new();
    logs.read_to_string(&mut streamed).unwrap();
    assert_eq!(streamed, content, "a follow of an exited container ends");

    // Starting twice, unknown ids.
    let e = c.call(Op::Start { id: "c1".into() }).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    let e = c.call(Op::Wait { id: "nope".into() }).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    let e = c.call(create(&agent, "c1", &["true"], false)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists);
    c.ok(Op::Delete {
        id: "c1".into(),
        force: false,
    });
    c.ok(create(&agent, "c1", &["true"], false));
}

#[test]
fn duplicate_ids_bad_commands_and_delete() {
    skip_unless_possible!();
    let agent = HostAgent::start();
    let mut c = agent.conn();
    c.ok(create(&agent, "d1", &["true"], false));
    let e = c.call(create(&agent, "d1", &["true"], false)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists);
    // A created, never started container can be deleted.
    c.ok(Op::Delete {
        id: "d1".into(),
        force: false,
    });
    let Reply::List { entries } = c.ok(Op::List) else {
        panic!()
    };
    assert!(entries.is_empty(), "{entries:?}");
    assert!(!agent.dir.path().join("state/containers/d1").exists());

    c.ok(create(&agent, "d2", &["/no/such/command"], false));
    let e = c.call(Op::Start { id: "d2".into() }).unwrap_err();
    assert_eq!(e.kind, ErrorKind::CommandNotFound, "{e}");
    let Reply::Exited(exit) = c.ok(Op::Wait { id: "d2".into() }) else {
        panic!()
    };
    assert_eq!(exit.exit_code, 127);
    c.ok(Op::Delete {
        id: "d2".into(),
        force: false,
    });

    let e = c
        .call(create(&agent, "../x", &["true"], false))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
}

#[test]
fn exec_top_stats_kill() {
    skip_unless_possible!();
    let agent = HostAgent::start();
    let mut c = agent.conn();
    c.ok(create(&agent, "k1", &["sleep", "300"], false));
    c.ok(Op::Start { id: "k1".into() });

    c.ok(Op::Exec(Box::new(CreateExec {
        container_id: "k1".into(),
        exec_id: "e1".into(),
        process: process(&["sh", "-c", "echo from exec; hostname >&2; exit 5"]),
        open_stdin: false,
        console_size: None,
    })));
    let stream = agent.stream(attach("e1", false)).unwrap();
    let reader = std::thread::spawn(move || demux(stream));
    c.ok(Op::Start { id: "e1".into() });
    let Reply::Exited(exit) = c.ok(Op::Wait { id: "e1".into() }) else {
        panic!()
    };
    assert_eq!(exit.exit_code, 5);
    let (out, err) = reader.join().unwrap();
    assert_eq!(out, "from exec\n");
    assert_eq!(
        err, "k1\n",
        "the exec runs in the container's UTS namespace"
    );

    let Reply::Top { processes } = c.ok(Op::Top { id: "k1".into() }) else {
        panic!()
    };
    assert!(
        processes.iter().any(|p| p.cmd == "sleep 300"),
        "{processes:?}"
    );
    let Reply::Stats(stats) = c.ok(Op::Stats { id: "k1".into() }) else {
        panic!()
    };
    assert!(
        stats.memory_usage > 0 || stats.pids_current > 0,
        "{stats:?}"
    );

    let e = c
        .call(Op::Delete {
            id: "k1".into(),
            force: false,
        })
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    c.ok(Op::Kill {
        id: "k1".into(),
        signal: 9,
    });
    let Reply::Exited(exit) = c.ok(Op::Wait { id: "k1".into() }) else {
        panic!()
    };
    assert_eq!(exit.exit_code, 137);
    c.ok(Op::Delete {
        id: "k1".into(),
        force: false,
    });
}

#[test]
fn attach_with_stdin_and_a_wait_does_not_block_control() {
    skip_unless_possible!();
    let agent = HostAgent::start();
    let mut c = agent.conn();
    c.ok(create(
        &agent,
        "s1",
        &["sh", "-c", "read line; echo got $line"],
        true,
    ));
    let mut stream = agent.stream(attach("s1", true)).unwrap();

    // A second control connection waits; this one keeps working meanwhile.
    let mut waiter = agent.conn();
    write_frame(
        &mut waiter.s,
        &Request {
            id: 99,
            op: Op::Wait { id: "s1".into() },
        },
    )
    .unwrap();
    c.ok(Op::Start { id: "s1".into() });
    assert_eq!(c.ok(Op::Ping), Reply::Pong);

    send_stdin(&mut stream, b"hello\n");
    let (out, _) = demux(stream);
    assert_eq!(out, "got hello\n");
    let resp: Response = read_frame(&mut waiter.s).unwrap();
    assert_eq!(resp.id, Some(99));
    let Ok(Reply::Exited(exit)) = resp.result else {
        panic!("{resp:?}")
    };
    assert_eq!(exit.exit_code, 0);
}

fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn garbage_gets_error_replies_and_the_agent_keeps_serving() {
    // Garbage needs no root: this runs everywhere.
    let agent = HostAgent::start();

    // No hello at all: HTTP on the socket.
    let mut s = agent.raw();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let reply: HelloReply = read_frame(&mut s).unwrap();
    let HelloReply::Refused { message, .. } = reply else {
        panic!("{reply:?}")
    };
    assert!(message.contains("expected a hello"), "{message}");

    // Another version.
    let mut s = agent.raw();
    let future = Hello {
        version: PROTOCOL_VERSION + 1,
        client: "future".into(),
        host_time_unix_nanos: None,
    };
    write_frame(&mut s, &future).unwrap();
    let reply: HelloReply = read_frame(&mut s).unwrap();
    let HelloReply::Refused { message, version } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(version, PROTOCOL_VERSION);
    assert!(
        message.contains(&format!("version {}", PROTOCOL_VERSION + 1))
            && message.contains(&format!("version {PROTOCOL_VERSION}")),
        "{message}"
    );
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the agent closes after refusing");

    // After the hello: malformed JSON, an unknown op, an oversized frame, then a good one,
    // all on the same connection.
    let mut c = agent.conn();
    c.s.write_all(&raw_frame(b"{this is not json")).unwrap();
    let resp: Response = read_frame(&mut c.s).unwrap();
    assert_eq!(resp.id, None);
    assert_eq!(resp.result.unwrap_err().kind, ErrorKind::BadRequest);
    c.s.write_all(&raw_frame(br#"{"id":41,"op":{"type":"format_disk"}}"#))
        .unwrap();
    let resp: Response = read_frame(&mut c.s).unwrap();
    assert_eq!(resp.id, Some(41), "the id of a readable request comes back");
    assert_eq!(resp.result.unwrap_err().kind, ErrorKind::BadRequest);
    c.s.write_all(&raw_frame(&vec![b'x'; MAX_FRAME_LEN + 1]))
        .unwrap();
    let resp: Response = read_frame(&mut c.s).unwrap();
    let e = resp.result.unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert!(e.message.contains("limit"), "{}", e.message);
    assert_eq!(c.ok(Op::Ping), Reply::Pong);

    // Garbage after the hello: a length no frame has. Error reply, then the connection
    // ends; the agent serves new ones.
    let mut c = agent.conn();
    c.s.write_all(&[0xff; HEADER_LEN + 8]).unwrap();
    let resp: Response = read_frame(&mut c.s).unwrap();
    assert_eq!(resp.result.unwrap_err().kind, ErrorKind::TooLarge);
    c.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = c.s.read_to_end(&mut rest);
    assert!(rest.is_empty());

    // A connection that hangs up mid-frame.
    let mut s = agent.raw();
    s.write_all(&[0, 0, 0, 50, b'{']).unwrap();
    drop(s);

    let mut c = agent.conn();
    assert_eq!(c.ok(Op::Ping), Reply::Pong);
    let logs = |id: &str| Op::OpenStream {
        target: StreamTarget::Logs {
            id: id.into(),
            follow: false,
        },
    };
    let e = c.call(logs("x")).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::BadRequest,
        "streams open on fresh connections"
    );
    let e = agent.conn().call(logs("x")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[test]
fn shutdown_ends_a_host_agent() {
    let mut agent = HostAgent::start();
    let mut c = agent.conn();
    assert_eq!(
        c.ok(Op::Shutdown {
            action: Default::default()
        }),
        Reply::Done
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent kept running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!agent.socket().exists());
}

#[test]
fn refuses_vsock_when_not_pid_1() {
    // On a host AF_VSOCK leads to the hypervisor's side: the agent must not listen there.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vmrun-agent"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on vsock"), "{err}");
}
