//! The agent's container-file streams on this host (`--listen unix:`): `Archive` (stat
//! and tar of a path), `Extract` (a chunked tar into a directory) and `Export`, on a
//! running container and, after it has gone, on its layers and writable layer mounted
//! for the stream (a stopped container), with its volumes and binds for `docker cp`;
//! paths that leave the root are refused.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use common::{spec, HostAgent};
use vmrun_agent_protocol::{
    AgentError, CreateContainer, ErrorKind, Op, Reply, RootfsSpec, StoppedMount, StreamTarget,
    DATA_TAR_END,
};

fn archive(
    agent: &HostAgent,
    path: &str,
    stopped: Option<RootfsSpec>,
) -> Result<Vec<u8>, AgentError> {
    archive_with(agent, path, stopped, Vec::new())
}

fn archive_with(
    agent: &HostAgent,
    path: &str,
    stopped: Option<RootfsSpec>,
    stopped_mounts: Vec<StoppedMount>,
) -> Result<Vec<u8>, AgentError> {
    let mut s = agent.stream(StreamTarget::Archive {
        id: "f1".into(),
        path: path.into(),
        stopped,
        stopped_mounts,
        stat_only: false,
    })?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    Ok(all)
}

/// The stat line and the tar's entries (name, content) of an archive stream.
fn parse(all: &[u8]) -> (serde_json::Value, Vec<(String, String)>) {
    let nl = all.iter().position(|b| *b == b'\n').expect("a stat line");
    let stat = serde_json::from_slice(&all[..nl]).unwrap();
    let body = &all[nl + 1..];
    assert!(body.ends_with(DATA_TAR_END), "the archive is complete");
    (stat, entries(&body[..body.len() - DATA_TAR_END.len()]))
}

fn entries(tar: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut text = String::new();
        let _ = e.read_to_string(&mut text);
        out.push((name, text));
    }
    out
}

/// Sends `tar` as an `Extract` stream into `path`; the agent's outcome.
fn extract(
    agent: &HostAgent,
    path: &str,
    tar: &[u8],
    stopped: Option<RootfsSpec>,
) -> serde_json::Value {
    extract_with(agent, path, tar, stopped, Vec::new())
}

fn extract_with(
    agent: &HostAgent,
    path: &str,
    tar: &[u8],
    stopped: Option<RootfsSpec>,
    stopped_mounts: Vec<StoppedMount>,
) -> serde_json::Value {
    let mut s = agent
        .stream(StreamTarget::Extract {
            id: "f1".into(),
            path: path.into(),
            stopped,
            stopped_mounts,
            no_overwrite_dir_non_dir: false,
            copy_uid_gid: false,
            user: None,
        })
        .unwrap();
    for chunk in tar.chunks(1000).chain([&[][..]]) {
        s.write_all(&(chunk.len() as u32).to_be_bytes()).unwrap();
        s.write_all(chunk).unwrap();
    }
    let mut line = String::new();
    s.read_to_string(&mut line).unwrap();
    serde_json::from_str(line.trim()).unwrap()
}

fn one_file(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o640);
    h.set_entry_type(tar::EntryType::Regular);
    // `set_path` refuses `..`; write the name as it is.
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn archive_extract_and_export_running_and_stopped() {
    if let Some(why) = common::skip_reason() {
        vmrun_test_skip::report(format_args!("{why}"));
        return;
    }
    let agent = HostAgent::start();
    let writable: PathBuf = agent.dir.path().join("rw");
    let mut c = agent.conn();
    c.ok(Op::Create(Box::new(CreateContainer {
        id: "f1".into(),
        spec: spec(
            &agent.unique(),
            "f1",
            &[
                "sh",
                "-c",
                "echo hi > /written; busybox ln -s / /up; busybox touch /ready; exec busybox sleep 300",
            ],
            false,
        ),
        rootfs: RootfsSpec {
            layers: vec![agent.layer()],
            writable: Some(writable.clone()),
        },
        user: None,
        tty: false,
        open_stdin: false,
        stdin_once: false,
        console_size: None,
        log_path: None,
        log_rotation: None,
        etc_files: None,
    })));
    c.ok(Op::Start { id: "f1".into() });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while archive(&agent, "/ready", None).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the container never got ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (stat, files) = parse(&archive(&agent, "/written", None).unwrap());
    assert_eq!(stat["name"], "written");
    assert_eq!(stat["size"], 3);
    assert_eq!(files, vec![("written".into(), "hi\n".into())]);
    // Through a symlink to `/` and `..`: still the container's root.
    let (stat, _) = parse(&archive(&agent, "/up/../up/written", None).unwrap());
    assert_eq!(stat["size"], 3);
    // The agent's own directory on this host is not in the container.
    let outside = agent.socket().display().to_string();
    for path in [format!("/up/../..{outside}"), format!("/up{outside}")] {
        let e = archive(&agent, &path, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{path}: {e:?}");
    }

    assert_eq!(
        extract(&agent, "/up/tmp", &one_file("in.txt", b"in\n"), None),
        serde_json::json!({"Ok": null})
    );
    let (_, files) = parse(&archive(&agent, "/tmp/in.txt", None).unwrap());
    assert_eq!(files, vec![("in.txt".into(), "in\n".into())]);
    let refused = extract(&agent, "/tmp", &one_file("../../x", b"x"), None);
    assert_eq!(refused["Err"]["kind"], "bad_request", "{refused}");

    let mut s = agent
        .stream(StreamTarget::Export {
            id: "f1".into(),
            stopped: None,
        })
        .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert!(all.ends_with(DATA_TAR_END));
    let names: Vec<String> = entries(&all[..all.len() - DATA_TAR_END.len()])
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for want in ["written", "bin/busybox", "tmp/in.txt"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }

    // Gone: its layers and writable layer are mounted for each stream.
    c.ok(Op::Kill {
        id: "f1".into(),
        signal: 9,
    });
    let Reply::Exited(_) = c.ok(Op::Wait { id: "f1".into() }) else {
        panic!()
    };
    c.ok(Op::Delete {
        id: "f1".into(),
        force: false,
    });
    let stopped = RootfsSpec {
        layers: vec![agent.layer()],
        writable: Some(writable),
    };
    let (_, files) = parse(&archive(&agent, "/tmp/in.txt", Some(stopped.clone())).unwrap());
    assert_eq!(files, vec![("in.txt".into(), "in\n".into())]);
    assert_eq!(
        extract(&agent, "/", &one_file("later", b"l"), Some(stopped.clone())),
        serde_json::json!({"Ok": null})
    );
    let (stat, _) = parse(&archive(&agent, "/later", Some(stopped.clone())).unwrap());
    assert_eq!(stat["size"], 1);
    let mut s = agent
        .stream(StreamTarget::Export {
            id: "f1".into(),
            stopped: Some(stopped.clone()),
        })
        .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let names: Vec<String> = entries(&all[..all.len() - DATA_TAR_END.len()])
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.iter().any(|n| n == "later"), "{names:?}");
    assert!(names.iter().any(|n| n == "written"), "{names:?}");

    // Its volumes and binds are mounted over the stopped root for `docker cp`: a mount
    // point missing in the image is made, a read-only one refuses writes.
    let vol = agent.dir.path().join("vol");
    let ro = agent.dir.path().join("ro");
    for d in [&vol, &ro] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(vol.join("v.txt"), "volume\n").unwrap();
    std::fs::write(ro.join("r.txt"), "ro\n").unwrap();
    let mounts = vec![
        StoppedMount {
            source: ro.clone(),
            destination: "/data/vol/ro".into(),
            read_only: true,
        },
        StoppedMount {
            source: vol.clone(),
            destination: "/data/vol".into(),
            read_only: false,
        },
    ];
    let (_, files) = parse(
        &archive_with(
            &agent,
            "/data/vol/v.txt",
            Some(stopped.clone()),
            mounts.clone(),
        )
        .unwrap(),
    );
    assert_eq!(files, vec![("v.txt".into(), "volume\n".into())]);
    let (_, files) = parse(
        &archive_with(
            &agent,
            "/data/vol/ro/r.txt",
            Some(stopped.clone()),
            mounts.clone(),
        )
        .unwrap(),
    );
    assert_eq!(files, vec![("r.txt".into(), "ro\n".into())]);
    assert_eq!(
        extract_with(
            &agent,
            "/data/vol",
            &one_file("new.txt", b"n"),
            Some(stopped.clone()),
            mounts.clone()
        ),
        serde_json::json!({"Ok": null})
    );
    assert_eq!(std::fs::read(vol.join("new.txt")).unwrap(), b"n");
    let refused = extract_with(
        &agent,
        "/data/vol/ro",
        &one_file("no.txt", b"x"),
        Some(stopped.clone()),
        mounts.clone(),
    );
    assert_eq!(refused["Err"]["kind"], "bad_request", "{refused}");
    assert!(!ro.join("no.txt").exists());
    // Without them, the root alone: the volume's file is not in the writable layer.
    let e = archive(&agent, "/data/vol/v.txt", Some(stopped.clone())).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    let gone = vec![StoppedMount {
        source: agent.dir.path().join("missing"),
        destination: "/m".into(),
        read_only: false,
    }];
    let e = archive_with(&agent, "/", Some(stopped), gone).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    assert!(e.message.contains("missing"), "{e:?}");
    // Nothing stays mounted.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/run/vmrun/files/"), "{mounts}");
}
