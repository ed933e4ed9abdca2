//! Server-wide counters of `ringmaster http`, gathered from every shard with cross-shard
//! calls: `/stats` (JSON: totals, then per shard) and `/metrics` (Prometheus text format
//! 0.0.4), the latter checked with Python's `prometheus_client` parser. The parser comes
//! from scripts/test (pip: prometheus_client); under CI a missing one fails the test,
//! elsewhere it is skipped with a note. Every wait is bounded.

mod common;
mod http_support;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ServerProc;
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
    let r = get(&mut conns[0], "/stats");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json = String::from_utf8(r.body).unwrap();
    assert!(json.starts_with("{\"shards\":2,\"total\":{"), "{json}");
    let shard0 = json.split("{\"shard\":0,").nth(1).expect("shard 0");
    let shard1 = json.split("{\"shard\":1,").nth(1).expect("shard 1");
    for name in ["accepted", "requests", "calls_served"] {
        let section = if name == "requests" {
            "\"http\":{"
        } else {
            "\"runtime\":{"
        };
        let total = value(&json, section, name);
        let (a, b) = (value(shard0, section, name), value(shard1, section, name));
        assert_eq!(total, a + b, "{name}: {json}");
    }
    // Every connection was counted, on whichever shard took it, and both took some.
    let accepted = (
        value(shard0, "\"runtime\":{", "accepted"),
        value(shard1, "\"runtime\":{", "accepted"),
    );
    assert_eq!(accepted.0 + accepted.1, CONNS as u64, "{json}");
    assert!(accepted.0 > 0 && accepted.1 > 0, "{accepted:?}");
    assert!(value(&json, "\"http\":{", "requests") >= 2 * CONNS as u64);
    drop(conns);
    drop(server);
}

#[test]
fn metrics_parse_with_prometheus_client() {
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
    let mut child = Command::new(python())
        .args([PY, "2", &(2 * CONNS).to_string()])
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
    drop(conns);
    drop(server);
}

#[test]
fn stats_gathers_every_shard_under_tls_too() {
    // Under TLS the shards run `Tls<Http<App>>`: the calls must still reach each App.
    let pem = std::env::temp_dir().join(format!("ringmaster-metrics-{}.pem", std::process::id()));
    let server = ServerProc::start(&[
        "http",
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
        "curl: {body}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
}
