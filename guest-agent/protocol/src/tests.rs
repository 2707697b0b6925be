use std::io::Cursor;

use super::frame::{self, FrameError, HEADER_LEN, MAX_SKIP_LEN};
use super::*;

fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn request_round_trip_and_shape() {
    let req = Request {
        id: 7,
        op: Op::Start { id: "c1".into() },
    };
    let bytes = frame::encode(&req).unwrap();
    let len = u32::from_be_bytes(bytes[..HEADER_LEN].try_into().unwrap()) as usize;
    assert_eq!(len, bytes.len() - HEADER_LEN);
    let body: serde_json::Value = serde_json::from_slice(&bytes[HEADER_LEN..]).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"id": 7, "op": {"type": "start", "id": "c1"}})
    );
    let back: Request = frame::read_frame(&mut Cursor::new(bytes)).unwrap();
    assert_eq!(back, req);
}

#[test]
fn every_op_round_trips() {
    let ops = vec![
        Op::Ping,
        Op::Version,
        Op::ConnectNetwork {
            id: "c1".into(),
            link: network::NetworkLink {
                bridge: "vmr-0123456789a".into(),
                host_veth: "vg0123456789abc".into(),
                interface: "eth1".into(),
                address: std::net::Ipv4Addr::new(172, 18, 0, 2),
                prefix_len: 16,
                mac: [2, 0x42, 172, 18, 0, 2],
            },
        },
        Op::DisconnectNetwork {
            id: "c1".into(),
            host_veth: "vg0123456789abc".into(),
        },
        Op::WriteHosts {
            id: "c1".into(),
            hosts: "127.0.0.1\tlocalhost\n".into(),
        },
        Op::SetTime { unix_nanos: 5 },
        Op::Shutdown {
            action: ShutdownAction::Reboot,
        },
        Op::MountLayer {
            device: "/dev/vdb".into(),
            id: "sha256-abc".into(),
        },
        Op::MountDataDisk {
            device: "/dev/vdc".into(),
        },
        Op::Create(Box::new(CreateContainer {
            id: "c".into(),
            spec: serde_json::json!({"ociVersion": "1.0.2"}),
            rootfs: RootfsSpec {
                layers: vec!["/l/1".into()],
                writable: None,
            },
            user: Some("1000:1000".into()),
            tty: true,
            open_stdin: true,
            stdin_once: false,
            console_size: Some([24, 80]),
            log_path: None,
            log_rotation: None,
            etc_files: None,
        })),
        Op::Exec(Box::new(CreateExec {
            container_id: "c".into(),
            exec_id: "e".into(),
            process: serde_json::json!({"args": ["ls"], "cwd": "/"}),
            open_stdin: false,
            console_size: None,
        })),
        Op::Wait { id: "c".into() },
        Op::Kill {
            id: "c".into(),
            signal: 9,
        },
        Op::Resize {
            id: "c".into(),
            height: 1,
            width: 2,
        },
        Op::Delete {
            id: "c".into(),
            force: true,
        },
        Op::Logs { id: "c".into() },
        Op::Stats { id: "c".into() },
        Op::Top { id: "c".into() },
        Op::List,
        Op::OpenStream {
            target: StreamTarget::Attach {
                id: "c".into(),
                stdin: true,
                stdout: true,
                stderr: false,
            },
        },
        Op::OpenStream {
            target: StreamTarget::Logs {
                id: "c".into(),
                follow: true,
            },
        },
    ];
    for (i, op) in ops.into_iter().enumerate() {
        let req = Request { id: i as u64, op };
        let back: Request = frame::decode(&frame::encode(&req).unwrap()[HEADER_LEN..]).unwrap();
        assert_eq!(back, req);
    }
}

#[test]
fn responses_round_trip() {
    for result in [
        Ok(Reply::Started { pid: 3 }),
        Ok(Reply::Exited(ExitInfo {
            exit_code: 137,
            oom_killed: true,
            finished_at: "t".into(),
        })),
        Err(AgentError::new(ErrorKind::NotFound, "no such container: x")),
    ] {
        let resp = Response {
            id: Some(1),
            result,
        };
        let back: Response = frame::decode(&frame::encode(&resp).unwrap()[HEADER_LEN..]).unwrap();
        assert_eq!(back, resp);
    }
}

#[test]
fn several_frames_in_one_stream() {
    let mut bytes = frame::encode(&Request {
        id: 1,
        op: Op::Ping,
    })
    .unwrap();
    bytes.extend(
        frame::encode(&Request {
            id: 2,
            op: Op::List,
        })
        .unwrap(),
    );
    let mut r = Cursor::new(bytes);
    assert_eq!(frame::read_frame::<Request>(&mut r).unwrap().id, 1);
    assert_eq!(frame::read_frame::<Request>(&mut r).unwrap().id, 2);
    assert!(matches!(
        frame::read_frame::<Request>(&mut r),
        Err(FrameError::Closed)
    ));
}

#[test]
fn oversized_frame_is_skipped_and_the_next_one_read() {
    let big = vec![b' '; MAX_FRAME_LEN + 1];
    let mut bytes = raw_frame(&big);
    bytes.extend(
        frame::encode(&Request {
            id: 9,
            op: Op::Ping,
        })
        .unwrap(),
    );
    let mut r = Cursor::new(bytes);
    let err = frame::read_frame::<Request>(&mut r).unwrap_err();
    assert!(
        matches!(err, FrameError::TooLarge { len, skipped: true, .. } if len == MAX_FRAME_LEN + 1),
        "{err:?}"
    );
    assert!(err.recoverable());
    assert!(err.to_string().contains("larger than the limit"));
    assert_eq!(frame::read_frame::<Request>(&mut r).unwrap().id, 9);
}

#[test]
fn garbage_length_is_not_skipped() {
    // "GET " read as a length: about 1.2 GB.
    let mut r = Cursor::new(b"GET / HTTP/1.1\r\n\r\n".to_vec());
    let err = frame::read_frame::<Request>(&mut r).unwrap_err();
    match err {
        FrameError::TooLarge { len, skipped, .. } => {
            assert!(len > MAX_SKIP_LEN);
            assert!(!skipped);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn encode_refuses_oversized_messages() {
    let huge = Op::Logs {
        id: "x".repeat(MAX_FRAME_LEN + 1),
    };
    assert!(matches!(
        frame::encode(&huge),
        Err(FrameError::TooLarge { skipped: false, .. })
    ));
}

#[test]
fn malformed_body_is_recoverable() {
    let mut bytes = raw_frame(b"{not json");
    bytes.extend(raw_frame(br#"{"id":1,"op":{"type":"no_such_op"}}"#));
    bytes.extend(
        frame::encode(&Request {
            id: 3,
            op: Op::Ping,
        })
        .unwrap(),
    );
    let mut r = Cursor::new(bytes);
    for _ in 0..2 {
        let err = frame::read_frame::<Request>(&mut r).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err:?}");
        assert!(err.recoverable());
    }
    assert_eq!(frame::read_frame::<Request>(&mut r).unwrap().id, 3);
}

#[test]
fn truncated_frame_is_an_io_error() {
    let mut bytes = frame::encode(&Request {
        id: 1,
        op: Op::Ping,
    })
    .unwrap();
    bytes.truncate(bytes.len() - 2);
    let err = frame::read_frame::<Request>(&mut Cursor::new(bytes)).unwrap_err();
    assert!(matches!(err, FrameError::Io(_)), "{err:?}");
    let err = frame::read_frame::<Request>(&mut Cursor::new(vec![0, 0])).unwrap_err();
    assert!(matches!(err, FrameError::Io(_)), "{err:?}");
}

#[test]
fn version_mismatch_names_both_versions() {
    let hello = Hello {
        version: PROTOCOL_VERSION + 1,
        client: "future".into(),
        host_time_unix_nanos: None,
    };
    let refused = check_hello(&hello).unwrap_err();
    let HelloReply::Refused { message, version } = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(*version, PROTOCOL_VERSION);
    assert!(message.contains(&format!("version {PROTOCOL_VERSION}")));
    assert!(message.contains(&format!("version {}", PROTOCOL_VERSION + 1)));

    // The client's view of an agent from the future.
    let from_future = HelloReply::Refused {
        version: PROTOCOL_VERSION + 1,
        message: "nope".into(),
    };
    let err = check_welcome(&from_future).unwrap_err();
    assert_eq!(
        err,
        VersionError::Mismatch {
            agent: PROTOCOL_VERSION + 1,
            client: PROTOCOL_VERSION,
            message: "nope".into()
        }
    );
    let text = err.to_string();
    assert!(text.contains(&format!("agent speaks version {}", PROTOCOL_VERSION + 1)));
    assert!(text.contains(&format!("client speaks version {PROTOCOL_VERSION}")));

    assert!(check_hello(&Hello::new("me", None)).is_ok());
    let welcome = HelloReply::Welcome {
        version: PROTOCOL_VERSION,
        agent: "a".into(),
        kernel_release: "k".into(),
        clock_adjusted: false,
    };
    assert!(check_welcome(&welcome).is_ok());
}

#[test]
fn ids() {
    assert!(valid_id("abc-1.2_3"));
    assert!(valid_id(&"a".repeat(128)));
    for bad in ["", ".", "..", "a/b", "a b", &"a".repeat(129), "é"] {
        assert!(!valid_id(bad), "{bad:?}");
    }
    assert_eq!(
        layer_path("l1"),
        std::path::Path::new("/run/vmrun/layers/l1")
    );
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_framing_matches_blocking() {
    let mut bytes = raw_frame(&vec![b'x'; MAX_FRAME_LEN + 5]);
    bytes.extend(raw_frame(b"[1,2"));
    bytes.extend(
        frame::encode(&Request {
            id: 4,
            op: Op::Ping,
        })
        .unwrap(),
    );
    let mut r = Cursor::new(bytes);
    let e = frame::nonblocking::read_frame::<Request, _>(&mut r)
        .await
        .unwrap_err();
    assert!(matches!(e, FrameError::TooLarge { skipped: true, .. }));
    let e = frame::nonblocking::read_frame::<Request, _>(&mut r)
        .await
        .unwrap_err();
    assert!(matches!(e, FrameError::Malformed(_)));
    let ok: Request = frame::nonblocking::read_frame(&mut r).await.unwrap();
    assert_eq!(ok.id, 4);
    assert!(matches!(
        frame::nonblocking::read_frame::<Request, _>(&mut r).await,
        Err(FrameError::Closed)
    ));
    let mut out = Vec::new();
    frame::nonblocking::write_frame(
        &mut out,
        &Request {
            id: 5,
            op: Op::Ping,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        frame::encode(&Request {
            id: 5,
            op: Op::Ping
        })
        .unwrap()
    );
}

#[test]
fn data_paths_stay_under_the_data_dir() {
    use std::path::Path;
    assert_eq!(
        data_path(Path::new("layers/abc.ext4")),
        Some(Path::new(DATA_DIR).join("layers/abc.ext4"))
    );
    assert_eq!(
        data_path(Path::new("a/./b")),
        Some(Path::new(DATA_DIR).join("a/b"))
    );
    for bad in ["", "/etc/passwd", "../x", "a/../../b", "./a", "a/.."] {
        assert_eq!(data_path(Path::new(bad)), None, "{bad:?}");
    }
}

#[test]
fn network_link_names_are_checked() {
    let mut link = network::NetworkLink {
        bridge: "vmr-0123456789a".into(),
        host_veth: "vg0123456789abc".into(),
        interface: "eth1".into(),
        address: std::net::Ipv4Addr::new(172, 18, 0, 2),
        prefix_len: 16,
        mac: [0; 6],
    };
    assert!(link.valid_names());
    link.interface = "eth1/../x".into();
    assert!(!link.valid_names());
    link.interface = "a-name-too-long".into();
    assert!(link.valid_names());
    link.interface.push('x');
    assert!(!link.valid_names());
}
