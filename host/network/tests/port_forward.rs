//! Published ports: host 127.0.0.1:<port> reaches an echo server in a
//! container's namespace, over TCP and UDP.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::{require_root, TestEnv};
use vmrun_network::{PortForwarder, PortSpec, Protocol};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_tcp_and_udp_ports_reach_the_container() {
    require_root!();
    let env = TestEnv::new("p", "10.251.4.0/24");
    let endpoint = env
        .manager()
        .attach(env.request("vmtest-p1", "bridge"))
        .unwrap();
    let ip = endpoint.ip.unwrap();
    let netns = endpoint.netns_path.clone().unwrap();
    common::tcp_echo_in(&netns, SocketAddr::new(ip.into(), 8080));
    common::udp_echo_in(&netns, SocketAddr::new(ip.into(), 5353));

    let tcp_spec = PortSpec::new(0, 8080, Protocol::Tcp);
    let tcp = PortForwarder::publish(tcp_spec, tcp_spec.target(ip))
        .await
        .unwrap();
    assert_ne!(tcp.host_port(), 0);
    assert_eq!(tcp.host_addr().ip(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let port = tcp.host_port();
    let answer = tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let first = common::round_trip(stream.try_clone().unwrap(), b"over tcp");
        let second = common::round_trip(stream, &[7u8; 100_000]);
        (first, second.len())
    })
    .await
    .unwrap();
    assert_eq!(answer, (b"over tcp".to_vec(), 100_000));

    let udp_spec = PortSpec {
        host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ..PortSpec::new(0, 5353, Protocol::Udp)
    };
    let udp = PortForwarder::publish(udp_spec, udp_spec.target(ip))
        .await
        .unwrap();
    let udp_port = udp.host_port();
    let echoed = tokio::task::spawn_blocking(move || {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut answers = Vec::new();
        for message in [&b"datagram one"[..], b"datagram two"] {
            client.send_to(message, ("127.0.0.1", udp_port)).unwrap();
            let mut buffer = [0u8; 64];
            let (n, from) = client.recv_from(&mut buffer).unwrap();
            assert_eq!(from.port(), udp_port);
            answers.push(buffer[..n].to_vec());
        }
        answers
    })
    .await
    .unwrap();
    assert_eq!(
        echoed,
        vec![b"datagram one".to_vec(), b"datagram two".to_vec()]
    );

    // An open connection is ended by close(), and the port stops listening.
    let held = tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        common::round_trip(stream.try_clone().unwrap(), b"x");
        stream
    })
    .await
    .unwrap();
    tcp.close().await;
    let closed = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut held = held;
        held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buffer = [0u8; 8];
        let ended = matches!(held.read(&mut buffer), Ok(0) | Err(_));
        let refused = TcpStream::connect(("127.0.0.1", port)).is_err();
        (ended, refused)
    })
    .await
    .unwrap();
    assert_eq!(closed, (true, true));
    // Dropping a published port stops listening: the port can be bound again.
    drop(udp);
    let rebound = tokio::task::spawn_blocking(move || {
        common::eventually(|| UdpSocket::bind(("127.0.0.1", udp_port)).is_ok())
    })
    .await
    .unwrap();
    assert!(rebound, "UDP port {udp_port} still in use after drop");

    // A fixed host port is honoured.
    let fixed = PortSpec {
        host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ..PortSpec::new(port, 8080, Protocol::Tcp)
    };
    let again = PortForwarder::publish(fixed, fixed.target(ip))
        .await
        .unwrap();
    assert_eq!(again.host_port(), port);
    again.close().await;

    env.manager().detach("vmtest-p1").unwrap();
}
