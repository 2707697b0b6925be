//! Connection set-up timeouts, over the same mock-queue guest as `tests.rs`: host clients that
//! never finish `CONNECT <port>\n`, and guest ports that never answer the REQUEST.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::packet::op;
use super::tests::{data_of, expect_closed, read_n, Guest};
use crate::virtio::testing::test_memory;

const TIMEOUT: Duration = Duration::from_millis(400);

/// Pumps host events until `done` holds (at most 5 s).
fn pump_until(g: &mut Guest<'_>, done: impl Fn(&Guest<'_>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(g) {
        assert!(Instant::now() < deadline, "timed out waiting");
        g.pump(50);
    }
}

fn still_open(s: &mut UnixStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 8];
    let open = matches!(s.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

/// An established connection still carries data both ways.
fn assert_works(g: &mut Guest<'_>, client: &mut UnixStream, gp: u32, hp: u32) {
    client.write_all(b"abc").unwrap();
    let pkts = g.recv_until(|p| data_of(p).len() >= 3);
    assert_eq!(data_of(&pkts), b"abc");
    assert!(pkts.iter().all(|p| p.hdr.op != op::RST), "{pkts:?}");
    g.send(gp, hp, op::RW, b"xyz");
    assert_eq!(read_n(client, 3), b"xyz");
}

#[test]
fn silent_and_partial_handshakes_are_closed_after_the_timeout() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    g.dev.set_connect_timeout(TIMEOUT);
    let (mut established, hp) = g.host_connect(10);

    let started = Instant::now();
    let mut silent = UnixStream::connect(&g.path).unwrap();
    let mut partial = UnixStream::connect(&g.path).unwrap();
    partial.write_all(b"CONNECT 11").unwrap();
    pump_until(&mut g, |g| g.dev.muxer().handshake_count() == 2);
    assert!(still_open(&mut silent) && still_open(&mut partial));

    pump_until(&mut g, |g| g.dev.muxer().handshake_count() == 0);
    assert!(
        started.elapsed() >= TIMEOUT,
        "closed after {:?}, before the timeout",
        started.elapsed()
    );
    expect_closed(&mut silent);
    expect_closed(&mut partial);
    assert!(g.recv().is_empty(), "nothing reaches the guest");
    assert_eq!(g.dev.muxer().connection_count(), 1);
    assert_works(&mut g, &mut established, 10, hp);
}

#[test]
fn unanswered_request_closes_the_host_client_and_resets_the_guest() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    g.dev.set_connect_timeout(TIMEOUT);
    let (mut established, hp) = g.host_connect(20);

    let sent = Instant::now();
    let mut client = UnixStream::connect(&g.path).unwrap();
    client.write_all(b"CONNECT 21\n").unwrap();
    let req = g.recv_until(|p| !p.is_empty())[0].hdr;
    assert_eq!({ req.op }, op::REQUEST);
    assert_eq!(g.dev.muxer().connection_count(), 2);

    // The guest never answers: after the timeout it gets an RST for that connection only.
    let pkts = g.recv_until(|p| p.iter().any(|p| p.hdr.op == op::RST));
    assert!(
        sent.elapsed() >= TIMEOUT,
        "reset after {:?}",
        sent.elapsed()
    );
    assert_eq!(pkts.len(), 1, "{pkts:?}");
    let rst = pkts[0].hdr;
    assert_eq!(({ rst.src_port }, { rst.dst_port }), ({ req.src_port }, 21));
    expect_closed(&mut client);
    assert_eq!(g.dev.muxer().connection_count(), 1);

    // A late RESPONSE finds no connection and is answered with RST.
    g.send(21, req.src_port, op::RESPONSE, &[]);
    let late = g.recv_until(|p| !p.is_empty());
    assert_eq!({ late[0].hdr.op }, op::RST);
    assert_works(&mut g, &mut established, 20, hp);
}

#[test]
fn connections_set_up_in_time_outlive_the_timeout() {
    let mem = test_memory();
    let mut g = Guest::new(&mem);
    g.dev.set_connect_timeout(TIMEOUT);
    let (mut first, hp1) = g.host_connect(30);
    let (mut second, hp2) = g.host_connect(31);
    let until = Instant::now() + TIMEOUT * 2;
    while Instant::now() < until {
        g.pump(50);
    }
    assert!(g.recv().is_empty(), "no RST after the deadlines passed");
    assert_eq!(g.dev.muxer().connection_count(), 2);
    assert_works(&mut g, &mut first, 30, hp1);
    assert_works(&mut g, &mut second, 31, hp2);
}
