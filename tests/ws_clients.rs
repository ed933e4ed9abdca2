//! WebSocket end to end: `ringmaster ws` (plain, `--broadcast`, and `wss://` with
//! `--tls-self-signed`) against clients nobody here wrote — Python's `websockets` and the
//! Autobahn cases through `kosoku`, also over TLS through a `socat` bridge — and
//! `sslyze --mozilla_config intermediate` against the TLS server.
//!
//! The external tools come from scripts/test (pip: websockets, kosoku, sslyze; apt:
//! socat). Under CI a missing tool fails the test; elsewhere it is skipped with a note.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::ServerProc;

const PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/ws_client.py");

fn python() -> String {
    std::env::var("RINGMASTER_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// True if `tool` runs; under CI a missing tool is a failure, elsewhere a skip.
fn have(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing (scripts/test installs it)"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    ok
}

/// Runs a command to completion, killed after `limit`.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringmaster-ws-e2e-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const LIMIT: &str = "2000000";

#[test]
fn python_websockets_client_plain_and_wss() {
    if !have(&python(), &["-c", "import websockets"]) {
        return;
    }
    let mut plain = ServerProc::start(&[
        "ws",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--max-message",
        LIMIT,
    ]);
    let out = run(
        Command::new(python()).args([PY, "echo", &plain.addr.to_string(), LIMIT]),
        Duration::from_secs(120),
    );
    check(&out, "websockets echo");
    let dir = scratch("wss");
    let ca = dir.join("ca.pem");
    let tls = ServerProc::start(&[
        "ws",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--max-message",
        LIMIT,
        "--tls-self-signed",
        "--tls-self-signed-out",
        ca.to_str().unwrap(),
    ]);
    let out = run(
        Command::new(python()).args([
            PY,
            "echo",
            &tls.addr.to_string(),
            LIMIT,
            ca.to_str().unwrap(),
        ]),
        Duration::from_secs(120),
    );
    check(&out, "websockets wss echo");
    assert!(plain.stop().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn broadcast_reaches_every_client_on_every_shard_exactly_once() {
    if !have(&python(), &["-c", "import websockets"]) {
        return;
    }
    let mut server = ServerProc::start(&[
        "ws",
        "--broadcast",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
    ]);
    let out = run(
        Command::new(python()).args([PY, "broadcast", &server.addr.to_string(), "24"]),
        Duration::from_secs(60),
    );
    check(&out, "broadcast");
    assert!(server.stop().success());
    // Both shards had clients (the kernel spreads connections by 4-tuple hash).
    let per_shard: Vec<u64> = server
        .stderr()
        .iter()
        .filter(|l| l.contains(": shard "))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("accepted=").and_then(|v| v.parse().ok()))
        })
        .collect();
    assert_eq!(per_shard.len(), 2, "{:?}", server.stderr());
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "one shard had no client: {per_shard:?}"
    );
}

#[test]
fn wss_broadcast_reaches_every_client_exactly_once() {
    if !have(&python(), &["-c", "import websockets"]) {
        return;
    }
    let dir = scratch("wss-broadcast");
    let ca = dir.join("ca.pem");
    let server = ServerProc::start(&[
        "ws",
        "--broadcast",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--tls-self-signed",
        "--tls-self-signed-out",
        ca.to_str().unwrap(),
    ]);
    let out = run(
        Command::new(python()).args([
            PY,
            "broadcast",
            &server.addr.to_string(),
            "16",
            ca.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    check(&out, "wss broadcast");
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs the Autobahn cases (less 12.* and 13.*, permessage-deflate) against `addr`.
fn kosoku(addr: &str, out: &std::path::Path) {
    let res = run(
        Command::new("kosoku")
            .args(["-x", "12.*", "-x", "13.*", "-o"])
            .arg(out)
            .arg(addr),
        Duration::from_secs(600),
    );
    check(&res, &format!("kosoku against {addr}"));
    let text = String::from_utf8_lossy(&res.stdout);
    assert!(text.contains("cases passed"), "{text}");
}

#[test]
fn autobahn_cases_via_kosoku_plain_and_over_tls() {
    if !have("kosoku", &["--help"]) {
        return;
    }
    let dir = scratch("autobahn");
    let server = ServerProc::start(&["ws", "--listen", "127.0.0.1:0", "--shards", "2"]);
    kosoku(&server.addr.to_string(), &dir.join("plain"));

    if !have("socat", &["-V"]) {
        return;
    }
    let ca = dir.join("ca.pem");
    let tls = ServerProc::start(&[
        "ws",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--tls-self-signed",
        "--tls-self-signed-out",
        ca.to_str().unwrap(),
    ]);
    // socat: plaintext on a local port, TLS (verified against our CA) to the server.
    let port = free_port();
    let mut bridge: Child = Command::new("socat")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg(format!(
            "OPENSSL:127.0.0.1:{},cafile={},commonname=localhost",
            tls.addr.port(),
            ca.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat");
    wait_listening(port);
    kosoku(&format!("127.0.0.1:{port}"), &dir.join("tls"));
    let _ = bridge.kill();
    let _ = bridge.wait();
    let _ = std::fs::remove_dir_all(dir);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "socat did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sslyze_mozilla_intermediate() {
    if !have("sslyze", &["--help"]) {
        return;
    }
    let dir = scratch("sslyze");
    let ca = dir.join("ca.pem");
    for mode in ["http", "ws"] {
        let server = ServerProc::start(&[
            mode,
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "1",
            "--tls-self-signed",
            "--tls-self-signed-out",
            ca.to_str().unwrap(),
        ]);
        let out = run(
            Command::new("sslyze")
                .args(["--mozilla_config", "intermediate", "--certinfo_ca_file"])
                .arg(&ca)
                .arg(server.addr.to_string()),
            Duration::from_secs(300),
        );
        check(&out, &format!("sslyze against {mode}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("OK - Compliant"), "{text}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
