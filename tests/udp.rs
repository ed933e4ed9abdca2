//! End-to-end tests of `ringmaster udp-echo`.

mod common;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{bin, ServerProc};
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

/// Runs `ringmaster <args>` to the end (at most 60 s); returns (exit code, stdout).
fn run_stdout(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ringmaster");
    let mut stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("ringmaster {args:?} did not exit");
        }
        thread::sleep(Duration::from_millis(20));
    };
    (status.code().unwrap_or(-1), reader.join().unwrap())
}

/// The value of a top-level field of the load generator's (pretty) JSON report.
fn field<'a>(json: &'a str, name: &str) -> &'a str {
    let key = format!("\n  \"{name}\": ");
    let at = json
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {json}"))
        + key.len();
    let rest = &json[at..];
    rest[..rest.find([',', '\n']).unwrap_or(rest.len())].trim()
}

#[test]
fn the_load_generator_runs_udp_echo_on_the_uring_engine() {
    let mut srv = ServerProc::start(&["udp-echo", "--listen", "127.0.0.1:0", "--shards", "1"]);
    let addr = srv.addr.to_string();
    let (code, json) = run_stdout(&[
        "load",
        "udp-echo",
        "--addr",
        &addr,
        "--requests",
        "5000",
        "--json",
    ]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(field(&json, "messages"), "5000", "{json}");
    assert_eq!(field(&json, "errors_total"), "0", "{json}");
    assert_eq!(field(&json, "engine"), "\"uring\"", "{json}");
    assert_eq!(field(&json, "note"), "null", "{json}");
    assert!(srv.stop().success());
    assert!(srv.counter("datagrams_in") >= 5000);
}
