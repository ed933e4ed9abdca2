//! End-to-end tests of the runtime's bounds through `ringmaster echo`: descriptor
//! exhaustion, idle timeout, write backpressure, the drain deadline, a second signal.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::ServerProc;

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn echo_once(s: &mut TcpStream, msg: &[u8]) -> bool {
    if s.write_all(msg).is_err() {
        return false;
    }
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf).is_ok() && buf == msg
}

#[test]
fn running_out_of_descriptors_pauses_accepting_and_recovers() {
    // Plain descriptors: the process's descriptor table fills (EMFILE).
    out_of_descriptors(&["--plain-fds"]);
}

#[test]
fn a_full_registered_file_table_pauses_accepting_and_recovers() {
    // Direct descriptors: the ring's registered table, sized within the descriptor
    // limit, fills (ENFILE) while the process's own table stays nearly empty.
    out_of_descriptors(&[]);
}

fn out_of_descriptors(extra: &[&str]) {
    let mut args = vec!["echo", "--listen", "127.0.0.1:0", "--shards", "1"];
    args.extend_from_slice(extra);
    // Start the server under a small descriptor limit.
    let mut srv = ServerProc::start_in_shell("ulimit -n 48 &&", &args);
    let addr = srv.addr;
    // Far more connections than descriptors: the kernel queues them, the server hits
    // EMFILE, counts it and pauses instead of spinning or dying.
    let mut conns: Vec<TcpStream> = Vec::new();
    for _ in 0..120 {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => conns.push(s),
            Err(_) => break,
        }
    }
    thread::sleep(Duration::from_millis(500));
    assert!(srv.is_running(), "server died on EMFILE");
    // Free descriptors; new connections are served again.
    drop(conns);
    let start = Instant::now();
    let mut ok = false;
    while start.elapsed() < Duration::from_secs(15) && !ok {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            ok = echo_once(&mut s, b"back");
        }
        if !ok {
            thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(ok, "server did not recover after descriptors were freed");
    assert!(srv.stop().success());
    assert!(srv.counter("emfile") > 0, "EMFILE was never hit");
    assert_eq!(
        srv.counter("sockets_closed"),
        srv.counter("accepted") + srv.counter("refused")
    );
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let mut srv = ServerProc::start(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--idle-timeout",
        "1",
    ]);
    let mut s = connect(srv.addr);
    assert!(echo_once(&mut s, b"x"));
    let mut b = [0u8; 1];
    let start = Instant::now();
    let r = s.read(&mut b);
    assert!(
        matches!(r, Ok(0)) || matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "{r:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(srv.stop().success());
    assert_eq!(srv.counter("idle_closed"), 1);
}

#[test]
fn a_peer_that_does_not_read_pauses_reading_and_loses_nothing() {
    let mut srv = ServerProc::start(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--write-backlog",
        "65536",
    ]);
    let s = connect(srv.addr);
    let mut w = s.try_clone().unwrap();
    let payload: Vec<u8> = (0..16_000_000u32).map(|i| (i % 251) as u8).collect();
    let expect = payload.clone();
    // Write everything before reading anything: the server's backlog bound must stop it
    // reading (or it would buffer the whole echo), and the writer blocks on TCP.
    let writer = thread::spawn(move || {
        w.write_all(&payload).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    thread::sleep(Duration::from_millis(500));
    let mut got = Vec::with_capacity(expect.len());
    let mut r = s;
    r.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert!(got == expect, "echo differs ({} bytes back)", got.len());
    assert!(srv.stop().success());
    assert!(srv.counter("backpressure_pauses") > 0);
}

#[test]
fn the_drain_deadline_closes_what_is_left_and_exits_zero() {
    let mut srv = ServerProc::start(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--drain-timeout",
        "1",
    ]);
    // A connection that has echoed once and then sits: it is "busy" for echo, so only
    // the deadline ends it.
    let mut s = connect(srv.addr);
    assert!(echo_once(&mut s, b"busy"));
    let t0 = Instant::now();
    srv.signal("TERM");
    let status = srv.wait_exit(Duration::from_secs(15)).expect("exits");
    assert!(status.success());
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "closed before the deadline"
    );
    assert_eq!(srv.counter("drain_forced"), 1);
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut srv = ServerProc::start(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--drain-timeout",
        "60",
    ]);
    let mut s = connect(srv.addr);
    assert!(echo_once(&mut s, b"busy"));
    srv.signal("INT");
    thread::sleep(Duration::from_millis(300));
    assert!(
        srv.is_running(),
        "draining, waiting for the busy connection"
    );
    srv.signal("INT");
    let status = srv.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(1));
}

#[test]
fn sigint_drains_even_when_the_shell_started_it_with_sigint_ignored() {
    // Non-interactive shells start background jobs with SIGINT ignored; the server must
    // still drain on it.
    let mut srv = ServerProc::start_in_shell(
        "trap '' INT;",
        &["echo", "--listen", "127.0.0.1:0", "--shards", "1"],
    );
    let mut s = connect(srv.addr);
    assert!(echo_once(&mut s, b"hi"));
    drop(s);
    srv.signal("INT");
    let status = srv
        .wait_exit(Duration::from_secs(15))
        .expect("exits on SIGINT");
    assert!(status.success(), "{status:?}");
    assert!(srv.stderr().iter().any(|l| l.contains("SIGINT received")));
}
