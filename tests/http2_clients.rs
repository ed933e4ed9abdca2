//! HTTP/2 with prior knowledge (h2c) on `ringmaster http`, from clients nobody here
//! wrote: curl `--http2-prior-knowledge` and Python's hyper-h2 for frame-level cases
//! (tests/py/h2_client.py). The same `App` serves HTTP/1.1 on the same port, and
//! `--no-h2` turns HTTP/2 off.

mod common;
mod http_support;

use std::process::Command;
use std::time::Duration;

use http_support::Server;

use common::run_bounded as run;

/// curl over h2c; returns stdout, asserting that HTTP/2 was spoken.
fn curl_h2(args: &[&str]) -> Vec<u8> {
    let out = run(
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "--http2-prior-knowledge",
                "-w",
                "\n%{http_version}",
            ])
            .args(args),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut body = out.stdout;
    let at = body
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("version line");
    let version = String::from_utf8_lossy(&body[at + 1..]).into_owned();
    assert_eq!(version, "2", "curl {args:?} spoke HTTP/{version}");
    body.truncate(at);
    body
}

#[test]
fn curl_prior_knowledge() {
    let server = Server::start(&[]);
    assert_eq!(curl_h2(&[&server.url("/plaintext")]), b"Hello, World!");
    let json = curl_h2(&[&server.url("/json")]);
    assert_eq!(json, br#"{"message":"Hello, World!"}"#);
    let echo = curl_h2(&["--data-binary", "a body over h2", &server.url("/echo")]);
    assert_eq!(echo, b"a body over h2");
    let big = curl_h2(&[&server.url("/bytes/1048576")]);
    assert_eq!(big.len(), 1_048_576);
    assert!(big.iter().all(|&b| b == b'x'));
    // Several URLs on one connection, as concurrent streams.
    let both = curl_h2(&[
        "--parallel",
        "--parallel-immediate",
        &server.url("/delay/200"),
        &server.url("/plaintext"),
    ]);
    let both = String::from_utf8_lossy(&both);
    assert!(
        both.contains("Hello, World!") && both.contains("OK"),
        "{both}"
    );
    // HTTP/1.1 on the same port still works.
    let out = run(
        Command::new("curl").args(["-sS", "--max-time", "10", &server.url("/plaintext")]),
        Duration::from_secs(20),
    );
    assert_eq!(out.stdout, b"Hello, World!");
    assert!(server.counter("http", "h2_connections") >= 5);
}

#[test]
fn no_h2_serves_http1_only() {
    let server = Server::start(&["--no-h2"]);
    let out = run(
        Command::new("curl").args([
            "-sS",
            "--max-time",
            "5",
            "--http2-prior-knowledge",
            &server.url("/plaintext"),
        ]),
        Duration::from_secs(20),
    );
    assert!(!out.status.success(), "h2c answered with --no-h2");
    let out = run(
        Command::new("curl").args(["-sS", "--max-time", "10", &server.url("/plaintext")]),
        Duration::from_secs(20),
    );
    assert_eq!(out.stdout, b"Hello, World!");
}

/// Runs tests/py/h2_client.py against `server` with `arg` (the server's pid, or a case
/// name); asserts that it printed "ok".
fn hyper_h2(server: &Server, arg: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/h2_client.py");
    let python = std::env::var("RINGMASTER_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = run(
        Command::new(python)
            .arg(script)
            .arg(server.addr.to_string())
            .arg(arg),
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "h2 client failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(stdout.trim(), "ok");
}

#[test]
fn hyper_h2_frame_level() {
    let server = Server::start(&[]);
    hyper_h2(&server, &server.pid().to_string());
}

/// A client that keeps its window at zero gets RST_STREAM CANCEL after
/// `--h2-stall-timeout`, counted, and its connection goes on.
#[test]
fn hyper_h2_zero_window_stall_is_cancelled() {
    let server = Server::start(&["--h2-stall-timeout", "1"]);
    hyper_h2(&server, "stall");
    assert_eq!(server.counter("http", "h2_stream_stalls"), 1);
}

/// A request body dripped in a byte at a time (under the 1 KiB/s minimum rate) gets 408
/// and RST_STREAM NO_ERROR once `--h2-stall-timeout` has passed, counted; the
/// connection goes on.
#[test]
fn hyper_h2_slow_drip_body_gets_408() {
    let server = Server::start(&["--h2-stall-timeout", "1"]);
    hyper_h2(&server, "drip");
    assert_eq!(server.counter("http", "h2_slow_bodies"), 1);
}

#[test]
fn h2_over_tls_by_alpn_and_http1_for_a_client_without_it() {
    let server = common::ServerProc::start(&[
        "http",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--tls-self-signed",
    ]);
    let cert = common::self_signed_cert(&server);
    let url = format!("https://{}/plaintext", server.addr);
    for (flag, want) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = run(
            Command::new("curl").args([
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                &cert,
                flag,
                "-w",
                "\n%{http_version}",
                &url,
            ]),
            Duration::from_secs(20),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(text, format!("Hello, World!\n{want}"), "curl {flag}");
    }
}
