//! The offload pool seen through HTTP, against the real binary: `GET /compute/N` runs on
//! the worker pool and comes back to the right connection; a connection gone before its
//! job finished gets nothing and leaks nothing; a full queue answers 503; a panicking job
//! answers 500 and the server goes on; a flood of jobs does not stop the shard from
//! answering `/plaintext`. Every loop is bounded in count and in time.

mod common;
mod http_support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ServerProc;
use http_support::{read_responses, Resp};

/// The server's `/compute/N` job, restated so the test checks values independently.
fn compute(n: u64) -> u64 {
    let mut x = n;
    for _ in 0..n {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x = z ^ (z >> 31);
    }
    x
}

/// The body `/compute/N` must answer.
fn expected(n: u64) -> Vec<u8> {
    format!("{n} {:016x}\n", compute(n)).into_bytes()
}

/// The largest N the server accepts: the slowest job there is.
const MAX_ROUNDS: u64 = 100_000_000;

fn start(extra: &[&str]) -> ServerProc {
    let mut args = vec!["http", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    ServerProc::start(&args)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn gets(paths: &[String]) -> Vec<u8> {
    let mut wire = Vec::new();
    for p in paths {
        wire.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    wire
}

/// Sends `paths` pipelined on `s` and reads as many responses (bounded by `limit`).
fn ask(s: &mut TcpStream, paths: &[String], limit: Duration) -> Vec<Resp> {
    s.write_all(&gets(paths)).unwrap();
    let (resps, _) = read_responses(s, paths.len(), limit);
    assert_eq!(resps.len(), paths.len(), "responses to {paths:?}");
    resps
}

/// One counter of `/stats` (section `runtime` or `http`) of a one-shard server.
fn counter(addr: SocketAddr, section: &str, name: &str) -> u64 {
    let mut s = connect(addr);
    let r = ask(&mut s, &["/stats".to_string()], Duration::from_secs(10));
    let json = String::from_utf8(r[0].body.clone()).unwrap();
    let sec = json
        .split(&format!("\"{section}\":{{"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {section} in {json}"));
    let v = sec
        .split(&format!("\"{name}\":"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in {json}"));
    v.split([',', '}']).next().unwrap().parse().unwrap()
}

/// Polls `counter` (at most `within`) until `ok` holds; returns the last value.
fn wait_counter(
    addr: SocketAddr,
    section: &str,
    name: &str,
    within: Duration,
    ok: impl Fn(u64) -> bool,
) -> u64 {
    let start = Instant::now();
    loop {
        let v = counter(addr, section, name);
        if ok(v) || start.elapsed() > within {
            return v;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn jobs_from_many_connections_return_to_their_own() {
    let srv = start(&["--shards", "2", "--offload-threads", "2"]);
    let addr = srv.addr;
    let handles: Vec<_> = (0..12u64)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                for round in 0..3u64 {
                    // Distinct N per connection and request, pipelined with a plaintext
                    // in the middle to check that order holds around offloaded answers.
                    let ns: Vec<u64> = (0..4)
                        .map(|i| 1_000 + c * 7_919 + round * 613 + i * 101)
                        .collect();
                    let mut paths: Vec<String> =
                        ns.iter().map(|n| format!("/compute/{n}")).collect();
                    paths.insert(2, "/plaintext".into());
                    let resps = ask(&mut s, &paths, Duration::from_secs(30));
                    let mut want: Vec<Vec<u8>> = ns.iter().map(|&n| expected(n)).collect();
                    want.insert(2, b"Hello, World!".to_vec());
                    for (r, w) in resps.iter().zip(&want) {
                        assert_eq!(r.status, 200, "{r:?}");
                        assert_eq!(&r.body, w, "connection {c} round {round}");
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
}

#[test]
fn closed_connection_gets_nothing_and_leaks_nothing() {
    // One worker: the blocker holds it, so the jobs queued behind it cannot finish
    // before their connections are gone.
    let srv = start(&["--shards", "1", "--offload-threads", "1"]);
    let addr = srv.addr;
    let baseline = srv.fd_count();

    let mut blocker = connect(addr);
    blocker
        .write_all(&gets(&[format!("/compute/{MAX_ROUNDS}")]))
        .unwrap();

    // The blocker is on the pool before the others are sent, so theirs queue behind it.
    let first = wait_counter(
        addr,
        "http",
        "offload_submitted",
        Duration::from_secs(10),
        |v| v >= 1,
    );
    assert_eq!(first, 1);

    let mut reset = Vec::new();
    for i in 0..8u64 {
        let mut s = connect(addr);
        s.write_all(&gets(&[format!("/compute/{}", 10 + i)]))
            .unwrap();
        reset.push(s);
    }
    // Every job is on the pool before any connection goes away.
    let submitted = wait_counter(
        addr,
        "http",
        "offload_submitted",
        Duration::from_secs(10),
        |v| v >= 9,
    );
    assert_eq!(submitted, 9);
    // Reset (SO_LINGER 0): the connections are gone at once, results still owed.
    for s in reset.drain(..) {
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    }

    let (resps, _) = read_responses(&mut blocker, 1, Duration::from_secs(60));
    assert_eq!(resps.len(), 1, "the blocker's answer");
    assert_eq!(resps[0].body, expected(MAX_ROUNDS));
    drop(blocker);

    // Every job came back to the shard ...
    let done = wait_counter(
        addr,
        "runtime",
        "offload_completed",
        Duration::from_secs(30),
        |v| v >= 9,
    );
    assert_eq!(done, 9, "every job finished on the pool");
    // ... but only the blocker's result reached a connection: the others were dropped.
    assert_eq!(counter(addr, "http", "offload_delivered"), 1);
    assert_eq!(counter(addr, "http", "offload_stale"), 0);
    assert_eq!(counter(addr, "runtime", "offload_panicked"), 0);

    let after = srv.wait_fds_at_most(baseline, Duration::from_secs(15));
    assert!(after <= baseline, "fds: {after} now, {baseline} before");
}

#[test]
fn full_queue_answers_503_with_retry_after() {
    let srv = start(&[
        "--shards",
        "1",
        "--offload-threads",
        "1",
        "--offload-queue",
        "1",
    ]);
    let mut s = connect(srv.addr);
    // One read, eight slow jobs: the worker takes one, the queue holds at most one more.
    let n = MAX_ROUNDS / 2;
    let paths: Vec<String> = (0..8).map(|i| format!("/compute/{}", n + i)).collect();
    let resps = ask(&mut s, &paths, Duration::from_secs(60));
    let mut ok = 0;
    let mut busy = 0;
    for (i, r) in resps.iter().enumerate() {
        match r.status {
            200 => {
                ok += 1;
                assert_eq!(r.body, expected(n + i as u64));
            }
            503 => {
                busy += 1;
                assert_eq!(r.header("Retry-After"), Some("1"), "{r:?}");
            }
            other => panic!("status {other}: {r:?}"),
        }
    }
    assert_eq!(
        resps[0].status, 200,
        "the first job always gets the worker or the queue"
    );
    assert!(busy >= 6, "{ok} answered, {busy} refused");
    // The connection survives its 503s.
    let r = ask(&mut s, &["/plaintext".to_string()], Duration::from_secs(30));
    assert_eq!(r[0].status, 200);
    assert_eq!(counter(srv.addr, "runtime", "offload_rejected"), busy);
    assert_eq!(counter(srv.addr, "http", "offload_refused"), busy);
}

#[test]
fn panicking_job_answers_500_and_the_server_goes_on() {
    let srv = start(&["--shards", "1", "--offload-threads", "1"]);
    let mut s = connect(srv.addr);
    let paths: Vec<String> = [
        "/compute/panic",
        "/compute/77",
        "/compute/panic",
        "/plaintext",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    let r = ask(&mut s, &paths, Duration::from_secs(30));
    assert_eq!(r[0].status, 500);
    assert_eq!(r[1].status, 200);
    assert_eq!(r[1].body, expected(77));
    assert_eq!(r[2].status, 500);
    assert_eq!(r[3].body, b"Hello, World!");
    // Same worker, new connection: still serving.
    let mut t = connect(srv.addr);
    let r = ask(&mut t, &["/compute/5".to_string()], Duration::from_secs(30));
    assert_eq!(r[0].body, expected(5));
    assert_eq!(counter(srv.addr, "http", "offload_panicked"), 2);
    assert_eq!(counter(srv.addr, "http", "offload_delivered"), 4);
    // The panic is reported on stderr (read by another thread: wait for it, bounded).
    let start = Instant::now();
    while !srv.stderr().iter().any(|l| l.contains("fault injection")) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no panic report on stderr: {:?}",
            srv.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn plaintext_is_answered_during_a_compute_flood() {
    let srv = start(&[
        "--shards",
        "1",
        "--offload-threads",
        "2",
        "--offload-queue",
        "64",
    ]);
    let addr = srv.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let n = MAX_ROUNDS / 20;
    let flood: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            let in_flight = in_flight.clone();
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let paths: Vec<String> = (0..4).map(|_| format!("/compute/{n}")).collect();
                let started = Instant::now();
                let mut answered = 0;
                // Bounded: at most 100 batches and 60 s, or until told to stop.
                for _ in 0..100 {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
                        break;
                    }
                    in_flight.fetch_add(paths.len(), Ordering::SeqCst);
                    let resps = ask(&mut s, &paths, Duration::from_secs(60));
                    in_flight.fetch_sub(paths.len(), Ordering::SeqCst);
                    for r in &resps {
                        assert!(matches!(r.status, 200 | 503), "{r:?}");
                    }
                    answered += resps.len();
                }
                answered
            })
        })
        .collect();
    // The pool is busy before we ask.
    let busy = wait_counter(
        addr,
        "http",
        "offload_submitted",
        Duration::from_secs(20),
        |v| v >= 4,
    );
    assert!(busy >= 4, "flood started ({busy} jobs)");

    let mut s = connect(addr);
    let mut seen_busy = false;
    for _ in 0..20 {
        seen_busy |= in_flight.load(Ordering::SeqCst) > 0;
        // Bounded wait (the read timeout), no latency threshold.
        let r = ask(&mut s, &["/plaintext".to_string()], Duration::from_secs(30));
        assert_eq!(r[0].body, b"Hello, World!");
    }
    assert!(
        seen_busy,
        "the flood was running while /plaintext was answered"
    );
    stop.store(true, Ordering::Relaxed);
    let total: usize = flood
        .into_iter()
        .map(|h| h.join().expect("flood thread"))
        .sum();
    assert!(total >= 4, "flood answered {total}");
}
