//! End-to-end tests of `ringmaster echo`: the real binary on real sockets.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{run_to_end, ServerProc};
use rand::{Rng, SeedableRng};

const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `payload` in random chunk sizes from one thread while another reads the echo;
/// returns what came back.
fn echo_roundtrip(addr: SocketAddr, payload: Vec<u8>, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let s = connect(addr);
    let mut w = s.try_clone().unwrap();
    let len = payload.len();
    let writer = thread::spawn(move || {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut off = 0;
        while off < payload.len() {
            let n = rng.random_range(1..=65536).min(payload.len() - off);
            w.write_all(&payload[off..off + n]).expect("write");
            off += n;
        }
        w.shutdown(Shutdown::Write).unwrap();
        payload
    });
    let mut got = Vec::with_capacity(len);
    let mut r = s;
    r.read_to_end(&mut got).expect("read echo");
    let sent = writer.join().unwrap();
    (sent, got)
}

fn random_payload(rng: &mut impl Rng, max: usize) -> Vec<u8> {
    let len = rng.random_range(1..=max);
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

fn checksum(b: &[u8]) -> u64 {
    // FNV-1a: enough to tell payloads apart in a failure message.
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100000001b3)
    })
}

#[test]
fn two_hundred_concurrent_connections_echo_every_byte() {
    // A low zero-copy threshold so large echoes also take the SEND_ZC path, kept on
    // loopback (where the kernel copies anyway) so every large echo takes it.
    let mut srv = ServerProc::start(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--zero-copy-threshold",
        "4096",
        "--zero-copy-always",
    ]);
    let addr = srv.addr;
    let handles: Vec<_> = (0..200u64)
        .map(|i| {
            thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + i);
                let payload = random_payload(&mut rng, 1 << 20);
                let (sent, got) = echo_roundtrip(addr, payload, i);
                assert_eq!(sent.len(), got.len(), "connection {i}: length");
                assert_eq!(checksum(&sent), checksum(&got), "connection {i}: checksum");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    assert!(srv.stop().success());
    assert_eq!(srv.counter("accepted"), 200);
    assert!(srv.counter("zc_sends") > 0, "no send went zero-copy");
}

#[test]
fn zero_copy_path_carries_a_multi_megabyte_payload() {
    let mut srv = zero_copy_echo(true);
    let (sent, got) = echo_roundtrip(srv.addr, seeded_payload(7, 8 << 20), 7);
    assert!(sent == got, "8 MiB payload came back different");
    assert!(srv.stop().success());
    assert!(srv.counter("zc_sends") > 0);
}

/// A one-shard echo server sending every echo past 1 KiB with SEND_ZC; `always` keeps it
/// doing so after the kernel reports copying (`--zero-copy-always`).
fn zero_copy_echo(always: bool) -> ServerProc {
    let mut args = vec![
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--buffer-size",
        "65536",
        "--zero-copy-threshold",
        "1024",
    ];
    if always {
        args.push("--zero-copy-always");
    }
    ServerProc::start(&args)
}

/// `len` random bytes from `seed`.
fn seeded_payload(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

/// On loopback the kernel copies zero-copy sends and says so: by default a connection
/// then sends plainly (counted in `zc_copied`); `--zero-copy-always` keeps SEND_ZC.
#[test]
fn zero_copy_falls_back_when_the_kernel_copies() {
    let mut sends = Vec::new();
    for always in [false, true] {
        let mut srv = zero_copy_echo(always);
        let (sent, got) = echo_roundtrip(srv.addr, seeded_payload(11, 4 << 20), 11);
        assert!(
            sent == got,
            "4 MiB payload came back different (always={always})"
        );
        assert!(srv.stop().success());
        let (zc, copied) = (srv.counter("zc_sends"), srv.counter("zc_copied"));
        assert!(
            zc > 0 && copied > 0,
            "always={always}: zc {zc}, copied {copied}"
        );
        sends.push(zc);
    }
    // Falling back, the connection stops using SEND_ZC soon after the first copy report;
    // kept on, every large echo uses it.
    assert!(
        sends[0] < sends[1],
        "zero-copy sends with fallback {} vs always {}",
        sends[0],
        sends[1]
    );
}

#[test]
fn half_close_gets_the_rest_then_eof() {
    let srv = ServerProc::start(&["echo", "--listen", "127.0.0.1:0", "--shards", "1"]);
    let mut s = connect(srv.addr);
    let msg = vec![b'x'; 300_000];
    s.write_all(&msg).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), msg.len());
    assert!(got == msg);
}

#[test]
fn resets_and_churn_leave_no_descriptor_behind() {
    churn_leaves_nothing_behind(&[]);
}

#[test]
fn resets_and_churn_leave_no_descriptor_behind_with_plain_fds() {
    churn_leaves_nothing_behind(&["--plain-fds"]);
}

/// The server's startup line names the descriptor kind its shards use.
fn descriptors_in_startup_line(srv: &mut ServerProc) -> String {
    let line = srv
        .stderr()
        .into_iter()
        .find(|l| l.contains("listening on"))
        .expect("startup line");
    line.split(", ").last().unwrap_or("").to_string()
}

#[test]
fn the_startup_line_says_which_descriptors_are_used() {
    let mut srv = ServerProc::start(&["echo", "--listen", "127.0.0.1:0", "--shards", "1"]);
    let direct = descriptors_in_startup_line(&mut srv);
    // Linux 6.7+ has everything direct descriptors need; an older kernel falls back and
    // says why.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    if (major, minor) >= (6, 7) {
        assert!(direct.starts_with("direct descriptors ("), "{direct}");
    } else {
        assert!(direct.starts_with("plain descriptors ("), "{direct}");
    }
    assert!(srv.stop().success());
    let mut srv = ServerProc::start(&["echo", "--listen", "127.0.0.1:0", "--plain-fds"]);
    assert_eq!(
        descriptors_in_startup_line(&mut srv),
        "plain descriptors (turned off))"
    );
    assert!(srv.stop().success());
}

fn churn_leaves_nothing_behind(extra: &[&str]) {
    let mut args = vec!["echo", "--listen", "127.0.0.1:0", "--shards", "2"];
    args.extend_from_slice(extra);
    let mut srv = ServerProc::start(&args);
    let addr = srv.addr;
    // Let the shards finish starting, then take the baseline.
    thread::sleep(Duration::from_millis(200));
    let baseline = srv.fd_count();
    assert!(baseline > 0);

    // Clients that reset mid-stream (SO_LINGER 0 then close while data flows).
    for i in 0..50 {
        let s = connect(addr);
        let sock = socket2::SockRef::from(&s);
        let mut w = s.try_clone().unwrap();
        w.write_all(&vec![i as u8; 200_000]).unwrap();
        sock.set_linger(Some(Duration::ZERO)).unwrap();
        drop(w);
        drop(s);
    }

    // 10,000 short-lived connections: connect, echo, close.
    let workers: Vec<_> = (0..4)
        .map(|t| {
            thread::spawn(move || {
                for i in 0..2500u32 {
                    let mut s = connect(addr);
                    let msg = format!("hello {t} {i}");
                    s.write_all(msg.as_bytes()).unwrap();
                    let mut buf = vec![0u8; msg.len()];
                    s.read_exact(&mut buf).unwrap();
                    assert_eq!(buf, msg.as_bytes());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let after = srv.wait_fds_at_most(baseline, Duration::from_secs(15));
    assert!(
        after <= baseline,
        "server holds {after} fds after churn, {baseline} before"
    );
    // Still serving.
    let (sent, got) = echo_roundtrip(addr, b"still alive".to_vec(), 1);
    assert_eq!(sent, got);
    assert!(srv.stop().success());
    assert!(srv.counter("accepted") >= 10_051);
    assert_eq!(srv.counter("accepted"), srv.counter("closed"));
    // Direct descriptors are not in /proc/PID/fd: the shards' own count of closed
    // sockets shows none was left open (no registered-table slot leaked).
    assert_eq!(
        srv.counter("sockets_closed"),
        srv.counter("accepted") + srv.counter("refused")
    );
}

#[test]
fn a_tiny_buffer_ring_runs_dry_and_loses_nothing() {
    // Once with whatever the kernel offers (bundles, incremental buffers), once with
    // plain one-buffer-per-receive, so both buffer paths see ENOBUFS.
    for extra in [
        &[][..],
        &["--no-recv-bundles", "--no-incremental-buffers"][..],
    ] {
        let mut args = vec![
            "echo",
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "1",
            "--buffers",
            "4",
            "--buffer-size",
            "256",
        ];
        args.extend_from_slice(extra);
        let mut srv = ServerProc::start(&args);
        let addr = srv.addr;
        let handles: Vec<_> = (0..32u64)
            .map(|i| {
                thread::spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(50 + i);
                    let payload = random_payload(&mut rng, 256 * 1024);
                    let (sent, got) = echo_roundtrip(addr, payload, i);
                    assert!(sent == got, "connection {i} lost or changed data");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(srv.stop().success());
        assert!(
            srv.counter("enobufs") > 0,
            "the buffer ring never ran dry ({extra:?})"
        );
    }
}

#[test]
fn past_max_conns_the_extra_connection_is_closed_and_others_work() {
    max_conns_refuses_the_extra(&[]);
}

#[test]
fn past_max_conns_the_extra_connection_is_closed_with_plain_fds() {
    max_conns_refuses_the_extra(&["--plain-fds"]);
}

fn max_conns_refuses_the_extra(extra: &[&str]) {
    let mut args = vec![
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--max-conns",
        "2",
    ];
    args.extend_from_slice(extra);
    let mut srv = ServerProc::start(&args);
    let mut a = connect(srv.addr);
    let mut b = connect(srv.addr);
    for s in [&mut a, &mut b] {
        s.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }
    let mut extra = connect(srv.addr);
    let _ = extra.write_all(b"ping");
    let mut buf = [0u8; 4];
    match extra.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("extra connection was served: {other:?}"),
    }
    for s in [&mut a, &mut b] {
        s.write_all(b"pong").unwrap();
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
    }
    drop((a, b));
    assert!(srv.stop().success());
    assert_eq!(srv.counter("refused"), 1);
    assert_eq!(srv.counter("sockets_closed"), 3);
}

#[test]
fn sigterm_lets_transfers_in_flight_complete_and_exits_zero() {
    sigterm_drains(&[]);
}

#[test]
fn sigterm_lets_transfers_in_flight_complete_with_plain_fds() {
    sigterm_drains(&["--plain-fds"]);
}

fn sigterm_drains(extra: &[&str]) {
    let mut args = vec![
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--drain-timeout",
        "10",
    ];
    args.extend_from_slice(extra);
    let mut srv = ServerProc::start(&args);
    let addr = srv.addr;
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let clients: Vec<_> = (0..20u64)
        .map(|i| {
            let started_tx = started_tx.clone();
            thread::spawn(move || {
                let s = connect(addr);
                let mut w = s.try_clone().unwrap();
                let payload: Vec<u8> = (0..2_000_000u32).map(|x| (x ^ i as u32) as u8).collect();
                let expect = payload.clone();
                let writer = thread::spawn(move || {
                    for chunk in payload.chunks(50_000) {
                        w.write_all(chunk).unwrap();
                        thread::sleep(Duration::from_millis(5));
                    }
                    w.shutdown(Shutdown::Write).unwrap();
                });
                // In flight means the server has echoed something: bytes still on their
                // way to it when the drain starts belong to a connection that has not
                // started as far as it can tell (closed at once, by design).
                let mut got = Vec::new();
                let mut r = s;
                let mut buf = vec![0u8; 65536];
                let mut told = false;
                loop {
                    let n = r.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if !told {
                        told = true;
                        let _ = started_tx.send(());
                    }
                }
                writer.join().unwrap();
                assert!(
                    got == expect,
                    "client {i}: transfer cut short ({} bytes)",
                    got.len()
                );
            })
        })
        .collect();
    for _ in 0..20 {
        started_rx.recv_timeout(IO_TIMEOUT).unwrap();
    }
    let t0 = Instant::now();
    srv.signal("TERM");
    for c in clients {
        c.join().expect("transfer completed");
    }
    let status = srv
        .wait_exit(Duration::from_secs(15))
        .expect("exits within the drain deadline");
    assert!(status.success(), "exit status {status:?}");
    assert!(t0.elapsed() < Duration::from_secs(15));
    // New connections are refused once draining.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn pinned_shards_start_on_the_cpus_given() {
    let mut srv = ServerProc::start(&["echo", "--listen", "127.0.0.1:0", "--cpus", "0"]);
    let line = srv
        .stderr()
        .into_iter()
        .find(|l| l.contains("listening on"))
        .unwrap();
    assert!(line.contains("1 shard, cpus 0,"), "{line}");
    let (sent, got) = echo_roundtrip(srv.addr, b"pinned".to_vec(), 4);
    assert_eq!(sent, got);
    assert!(srv.stop().success());
}

#[test]
fn batched_waits_still_echo_every_byte() {
    let mut srv = ServerProc::start(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--batch",
        "16",
        "--batch-wait",
        "200",
    ]);
    let addr = srv.addr;
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            thread::spawn(move || {
                let mut s = connect(addr);
                // Ping-pong: each message waits for its echo, so a batch that never
                // filled would show up as a hang (bounded by the read timeout).
                for n in 0..200u32 {
                    let msg = format!("{i}:{n}");
                    s.write_all(msg.as_bytes()).unwrap();
                    let mut buf = vec![0u8; msg.len()];
                    s.read_exact(&mut buf).unwrap();
                    assert_eq!(buf, msg.as_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(srv.stop().success());
}

#[test]
fn ipv6_loopback() {
    let mut srv = ServerProc::start(&["echo", "--listen", "[::1]:0", "--shards", "2"]);
    assert!(srv.addr.is_ipv6());
    let (sent, got) = echo_roundtrip(srv.addr, b"over ipv6".repeat(1000), 3);
    assert_eq!(sent, got);
    assert!(srv.stop().success());
}

#[test]
fn usage_and_runtime_errors_are_one_line_with_the_right_exit_code() {
    let (code, err) = run_to_end(&["echo", "--listen", "127.0.0.1:0", "--shards", "x"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--shards"), "{err}");

    let (code, err) = run_to_end(&["echo", "--listen", "127.0.0.1:0", "--bogus"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let (code, err) = run_to_end(&["echo", "--listen", "127.0.0.1:0", "--buffers", "3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("power of two"), "{err}");

    // Port in use: hold it with a plain listener (no SO_REUSEPORT, so bind must fail).
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let (code, err) = run_to_end(&["echo", "--listen", &format!("127.0.0.1:{port}")]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("in use"), "{err}");

    let (code, out) = run_to_end(&["echo", "--help"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn deferred_accept_serves_clients_that_speak_first() {
    let mut srv = ServerProc::start(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--defer-accept",
        "1",
    ]);
    // The connection reaches the shard with its first bytes, on either descriptor path.
    for _ in 0..20 {
        let (sent, got) = echo_roundtrip(srv.addr, b"first bytes".to_vec(), 3);
        assert_eq!(sent, got);
    }
    assert!(srv.stop().success());
    assert_eq!(srv.counter("accepted"), srv.counter("closed"));
    assert!(srv.counter("accepted") >= 20);
}

#[test]
fn sigterm_drains_and_exits_0_even_with_stderr_closed() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    // A supervisor that stops reading our stderr (it closed its end) must still be able
    // to stop us: the lines we print on the way out are dropped, not fatal.
    let mut child = Command::new(common::bin())
        .args(["echo", "--listen", "127.0.0.1:0", "--shards", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    drop(err);
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 20 s after SIGTERM with its stderr closed");
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "drained and exited 0");
}
