//! Server-wide counters, gathered from every shard with cross-shard calls: `/stats`
//! (JSON: totals, then per shard) and `/metrics` (Prometheus text format 0.0.4), the
//! latter checked with Python's `prometheus_client` parser: on `ringmaster http` and
//! `ringmaster ws` (their own routes), and on `ringmaster echo` and `udp-echo`
//! (`--metrics-listen`). The parser comes from scripts/test (pip: prometheus_client);
//! under CI a missing one fails the test, elsewhere it is skipped with a note. Every
//! wait is bounded.

mod common;
mod http_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_to_end, ServerProc};
use http_support::{read_responses, Resp};

const PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/prom_check.py");
const LIMIT: Duration = Duration::from_secs(10);
const CONNS: usize = 16;

fn python() -> String {
    std::env::var("RINGMASTER_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn connect(server: &ServerProc) -> TcpStream {
    let s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    s
}

fn get(s: &mut TcpStream, path: &str) -> Resp {
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let (mut r, _) = read_responses(s, 1, LIMIT);
    assert_eq!(r.len(), 1, "no answer to {path}");
    r.remove(0)
}

/// A two-shard server that has served `CONNS` connections a `/plaintext` each (a
/// `/delay/5` too, for a latency above zero), the connections still open.
fn busy_server() -> (ServerProc, Vec<TcpStream>) {
    let server = ServerProc::start(&["http", "--listen", "127.0.0.1:0", "--shards", "2"]);
    let mut conns: Vec<TcpStream> = (0..CONNS).map(|_| connect(&server)).collect();
    for c in conns.iter_mut() {
        assert_eq!(get(c, "/plaintext").status, 200);
        assert_eq!(get(c, "/delay/5").status, 200);
    }
    (server, conns)
}

/// GET /stats on `s`: the JSON body of a 200.
fn stats(s: &mut TcpStream) -> String {
    let r = get(s, "/stats");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    String::from_utf8(r.body).unwrap()
}

/// The value of `"name":N` in the first object of `json` after `after`.
fn value(json: &str, after: &str, name: &str) -> u64 {
    let rest = json
        .split(after)
        .nth(1)
        .unwrap_or_else(|| panic!("no {after}"));
    let v = rest
        .split(&format!("\"{name}\":"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} after {after} in {json}"));
    v.split([',', '}']).next().unwrap().parse().unwrap()
}

#[test]
fn stats_has_every_shards_counters_and_their_totals() {
    let (server, mut conns) = busy_server();
    let json = stats(&mut conns[0]);
    let sums = totals_are_sums(
        &json,
        &[
            ("runtime", "accepted"),
            ("http", "requests"),
            ("runtime", "calls_served"),
        ],
    );
    // Every connection was counted, on whichever shard took it, and both took some.
    let accepted = sums[0];
    assert_eq!(accepted.0 + accepted.1, CONNS as u64, "{json}");
    assert!(accepted.0 > 0 && accepted.1 > 0, "{accepted:?}");
    assert!(value(&json, "\"http\":{", "requests") >= 2 * CONNS as u64);
    drop(conns);
    drop(server);
}

/// True if python3 has prometheus_client; under CI a missing one fails the test.
fn have_prometheus_client() -> bool {
    let probe = Command::new(python())
        .args(["-c", "import prometheus_client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !probe {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 prometheus_client is missing (scripts/test installs it)"
        );
        eprintln!("skipped: python3 prometheus_client is not installed");
    }
    probe
}

/// Parses `text` with prom_check.py (`kind`: http, ws, echo, udp-echo) and asserts it
/// passed, within 30 s.
fn prom_check(text: &str, shards: usize, minimum: u64, kind: &str) {
    let mut child = Command::new(python())
        .args([PY, &shards.to_string(), &minimum.to_string(), kind])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("prom_check.py did not finish in 30 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok"),
        "prom_check.py: {stdout}{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// For each (section, counter): the total is the sum of both shards' values; returns
/// the per-shard values.
fn totals_are_sums(json: &str, names: &[(&str, &str)]) -> Vec<(u64, u64)> {
    assert!(json.starts_with("{\"shards\":2,\"total\":{"), "{json}");
    let shard0 = json.split("{\"shard\":0,").nth(1).expect("shard 0");
    let shard1 = json.split("{\"shard\":1,").nth(1).expect("shard 1");
    names
        .iter()
        .map(|(section, name)| {
            let section = format!("\"{section}\":{{");
            let total = value(json, &section, name);
            let (a, b) = (value(shard0, &section, name), value(shard1, &section, name));
            assert_eq!(total, a + b, "{section}{name}: {json}");
            (a, b)
        })
        .collect()
}

#[test]
fn metrics_parse_with_prometheus_client() {
    if !have_prometheus_client() {
        return;
    }
    let (server, mut conns) = busy_server();
    let r = get(&mut conns[0], "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains("# TYPE ringmaster_http_requests_total counter\n"),
        "{text}"
    );
    prom_check(&text, 2, 2 * CONNS as u64, "http");
    drop(conns);
    drop(server);
}

#[test]
fn stats_gathers_every_shard_under_tls_too() {
    // Under TLS the shards run `Tls<Http<App>>` and `Tls<HttpWs<App, WsApp>>`: the
    // calls must still find the handler they name inside.
    for mode in ["http", "ws"] {
        let pem = std::env::temp_dir().join(format!(
            "ringmaster-metrics-{mode}-{}.pem",
            std::process::id()
        ));
        let server = ServerProc::start(&[
            mode,
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "2",
            "--tls-self-signed",
            "--tls-self-signed-out",
            pem.to_str().unwrap(),
        ]);
        let url = format!("https://127.0.0.1:{}/stats", server.addr.port());
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                pem.to_str().unwrap(),
                &url,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("curl");
        let _ = std::fs::remove_file(&pem);
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && body.starts_with("{\"shards\":2,")
                && body.contains("{\"shard\":1,"),
            "{mode}: curl: {body}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop(server);
    }
}

// ---- ringmaster ws: its HTTP side serves /stats and /metrics -----------------------

/// Upgrades `s` to WebSocket, sends one masked text message and reads its echo.
fn ws_echo_once(s: &mut TcpStream) {
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + LIMIT;
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    assert!(
        got.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 5];
    frame.extend_from_slice(&mask);
    frame.extend(b"hello".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    s.write_all(&frame).unwrap();
    let mut echo = Vec::new();
    while echo.len() < 7 && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => echo.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    assert_eq!(echo, b"\x81\x05hello");
}

/// A two-shard `ringmaster ws` that has echoed one message on each of `CONNS`
/// WebSocket connections and answered `CONNS` plain requests (426), all still open.
fn busy_ws_server() -> (ServerProc, Vec<TcpStream>) {
    let server = ServerProc::start(&["ws", "--listen", "127.0.0.1:0", "--shards", "2"]);
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        let mut ws = connect(&server);
        ws_echo_once(&mut ws);
        let mut plain = connect(&server);
        assert_eq!(get(&mut plain, "/").status, 426);
        conns.extend([ws, plain]);
    }
    (server, conns)
}

#[test]
fn ws_stats_and_metrics_have_every_shards_counters() {
    let (server, _conns) = busy_ws_server();
    let mut c = connect(&server);
    let json = stats(&mut c);
    let sums = totals_are_sums(
        &json,
        &[
            ("runtime", "accepted"),
            ("http", "requests"),
            ("websocket", "opened"),
            ("websocket", "messages_in"),
        ],
    );
    let n = CONNS as u64;
    let total = |i: usize| sums[i].0 + sums[i].1;
    // The /stats connection and its request are counted already (the upgrades are not
    // HTTP requests); the request is not timed yet.
    assert_eq!(total(0), 2 * n + 1, "{json}");
    assert!(sums[0].0 > 0 && sums[0].1 > 0, "{json}");
    assert_eq!(total(1), n + 1, "{json}");
    assert_eq!(value(&json, "\"total\":{", "requests_timed"), n, "{json}");
    assert_eq!((total(2), total(3)), (n, n), "{json}");

    if !have_prometheus_client() {
        return;
    }
    let r = get(&mut c, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
    let text = String::from_utf8(r.body).unwrap();
    prom_check(&text, 2, n, "ws");
    drop(server);
}

// ---- echo and udp-echo: --metrics-listen --------------------------------------------

/// `ringmaster <mode>` on two shards, with a metrics listener.
fn start_with_metrics(mode: &str) -> ServerProc {
    let args = ["--listen", "127.0.0.1:0", "--shards", "2"];
    let metrics = ["--metrics-listen", "127.0.0.1:0"];
    ServerProc::start(&[&[mode][..], &args, &metrics].concat())
}

/// The address of the server's `metrics listening on` line (waited for, at most 10 s).
fn metrics_addr(server: &ServerProc) -> SocketAddr {
    let deadline = Instant::now() + LIMIT;
    loop {
        let found = server.stderr().iter().find_map(|l| {
            l.split("metrics listening on ")
                .nth(1)
                .and_then(|a| a.trim().parse().ok())
        });
        if let Some(addr) = found {
            return addr;
        }
        assert!(
            Instant::now() < deadline,
            "no metrics line: {:?}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GET `path` from the metrics listener: (status line, content type, body). The
/// listener closes every connection after its answer.
fn scrape(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a whole response");
    let status = head.lines().next().unwrap_or("").to_string();
    let ty = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    (status, ty, body.to_string())
}

/// Checks a non-HTTP server's /stats (`counter` in the runtime set totals `want`, both
/// shards have some of `spread`) and /metrics (prom_check.py `kind`).
fn check_metrics_listener(server: &ServerProc, counter: &str, spread: &str, want: u64, kind: &str) {
    let addr = metrics_addr(server);
    let (status, ty, json) = scrape(addr, "/stats");
    assert_eq!(
        (status.as_str(), ty.as_str()),
        ("HTTP/1.1 200 OK", "application/json")
    );
    let sums = totals_are_sums(&json, &[("runtime", counter), ("runtime", spread)]);
    assert_eq!(sums[0].0 + sums[0].1, want, "{json}");
    assert!(sums[1].0 > 0 && sums[1].1 > 0, "{json}");
    assert!(!json.contains("\"http\":"), "{json}");
    assert_eq!(scrape(addr, "/nope").0, "HTTP/1.1 404 Not Found");
    if !have_prometheus_client() {
        return;
    }
    let (status, ty, text) = scrape(addr, "/metrics");
    assert_eq!(
        (status.as_str(), ty.as_str()),
        ("HTTP/1.1 200 OK", "text/plain; version=0.0.4")
    );
    prom_check(&text, 2, want, kind);
}

#[test]
fn echo_serves_every_shards_counters_on_its_metrics_listener() {
    let server = start_with_metrics("echo");
    let payload = [b'e'; 100];
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        let mut c = connect(&server);
        c.set_read_timeout(Some(LIMIT)).unwrap();
        c.write_all(&payload).unwrap();
        let mut back = [0u8; 100];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, payload);
        conns.push(c);
    }
    let want = (CONNS * payload.len()) as u64;
    check_metrics_listener(&server, "bytes_in", "accepted", want, "echo");
    drop(conns);
    drop(server);
}

#[test]
fn udp_echo_serves_every_shards_counters_on_its_metrics_listener() {
    let server = start_with_metrics("udp-echo");
    const EACH: usize = 5;
    for _ in 0..CONNS {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.connect(server.addr).unwrap();
        for i in 0..EACH {
            let msg = [i as u8; 32];
            s.send(&msg).unwrap();
            let mut back = [0u8; 64];
            let n = s.recv(&mut back).expect("an echo within 10 s");
            assert_eq!(&back[..n], &msg);
        }
    }
    let want = (CONNS * EACH) as u64;
    check_metrics_listener(&server, "datagrams_in", "datagrams_in", want, "udp-echo");
    drop(server);
}

#[test]
fn a_bad_or_busy_metrics_address_is_one_line_and_an_exit_code() {
    let (code, err) = run_to_end(&[
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "nowhere",
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--metrics-listen"), "{err}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for mode in [&["echo"][..], &["udp-echo"][..]] {
        let mut args = mode.to_vec();
        args.extend(["--listen", "127.0.0.1:0", "--metrics-listen", &addr]);
        let (code, err) = run_to_end(&args);
        assert_eq!(code, 1, "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(&addr) && err.contains("in use"), "{err}");
    }
}
