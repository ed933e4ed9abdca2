//! End-to-end tests of `ringmaster udp-echo`.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use common::ServerProc;
use rand::{Rng, SeedableRng};

fn client(bind: &str) -> UdpSocket {
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends one datagram and waits for its echo, retrying a bounded number of times (UDP
/// may drop; a loopback drop is rare, a wrong echo is a failure).
fn ping(s: &UdpSocket, server: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    for _ in 0..5 {
        s.send_to(payload, server).unwrap();
        match s.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, server, "reply from the wrong address");
                return buf[..n].to_vec();
            }
            Err(_) => continue,
        }
    }
    panic!("no echo after 5 tries");
}

#[test]
fn ten_thousand_datagrams_from_many_sockets_come_back_identical() {
    let mut srv = ServerProc::start(&["udp-echo", "--listen", "127.0.0.1:0", "--shards", "2"]);
    let server = srv.addr;
    let workers: Vec<_> = (0..10u64)
        .map(|c| {
            thread::spawn(move || {
                let s = client("127.0.0.1:0");
                let mut rng = rand::rngs::StdRng::seed_from_u64(c);
                for i in 0..1000 {
                    let len = rng.random_range(0..=8000);
                    let mut p = vec![0u8; len];
                    rng.fill(&mut p[..]);
                    let got = ping(&s, server, &p);
                    assert!(got == p, "client {c} datagram {i}: echo differs");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("client");
    }
    assert!(srv.stop().success());
    assert!(srv.counter("datagrams_in") >= 10_000);
    assert_eq!(srv.counter("udp_truncated"), 0);
}

#[test]
fn oversize_datagram_is_counted_and_not_echoed() {
    let mut srv = ServerProc::start(&[
        "udp-echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--buffer-size",
        "2048",
    ]);
    let s = client("127.0.0.1:0");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.send_to(&vec![7u8; 4000], srv.addr).unwrap();
    let mut buf = [0u8; 8192];
    assert!(s.recv_from(&mut buf).is_err(), "a cut datagram was echoed");
    // Still echoing.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(ping(&s, srv.addr, b"small"), b"small");
    assert!(srv.stop().success());
    assert_eq!(srv.counter("udp_truncated"), 1);
}

#[test]
fn ipv6_datagrams() {
    let mut srv = ServerProc::start(&["udp-echo", "--listen", "[::1]:0", "--shards", "2"]);
    let s = client("[::1]:0");
    for n in [0usize, 1, 100, 9000] {
        let p: Vec<u8> = (0..n).map(|i| i as u8).collect();
        assert_eq!(ping(&s, srv.addr, &p), p);
    }
    assert!(srv.stop().success());
}
