//! Real clients nobody here wrote against `ringmaster http`: curl and Python's h11 (a
//! strict client). The Rust client (ureq) is in `http_ureq.rs`.

mod common;
mod http_support;

use std::process::Command;
use std::time::Duration;

use http_support::Server;

fn curl(args: &[&str], stdin: Option<&[u8]>) -> (String, String) {
    let out = common::run_bounded_input(
        Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(args),
        stdin,
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn curl_keep_alive_head_and_chunked_upload() {
    let server = Server::start(&[]);
    let (out, err) = curl(
        &[
            "-v",
            "--http1.1",
            &server.url("/plaintext"),
            &server.url("/json"),
        ],
        None,
    );
    assert_eq!(out, "Hello, World!{\"message\":\"Hello, World!\"}");
    assert!(err.contains("Re-using existing connection"), "{err}");
    assert!(err.contains("< Server: ringmaster"), "{err}");

    let (out, _) = curl(&["-I", "--http1.1", &server.url("/plaintext")], None);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Content-Length: 13\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "HEAD must have no body: {out:?}");

    let body = "streamed from stdin ".repeat(500);
    let (out, err) = curl(
        &[
            "-v",
            "--http1.1",
            "-T",
            "-",
            "-X",
            "POST",
            &server.url("/echo"),
        ],
        Some(body.as_bytes()),
    );
    assert!(err.contains("> Transfer-Encoding: chunked"), "{err}");
    assert_eq!(out, body);

    let (out, _) = curl(&["--http1.1", &server.url("/bytes/200000")], None);
    assert_eq!(out.len(), 200_000);
    // Large bodies go out from one static buffer, zero-copy above the threshold (and
    // plainly once the kernel reports copying, as it does on loopback).
    let (out, _) = curl(&[&server.url("/bytes/5000000")], None);
    assert!(out.len() == 5_000_000 && out.bytes().all(|b| b == b'x'));
    assert!(server.counter("runtime", "zc_sends") >= 1);

    // HTTP/1.0 keeps the connection only when asked, and says so.
    let (out, err) = curl(
        &[
            "-v",
            "--http1.0",
            "-H",
            "Connection: keep-alive",
            &server.url("/plaintext"),
            &server.url("/plaintext"),
        ],
        None,
    );
    assert_eq!(out, "Hello, World!Hello, World!");
    assert!(err.contains("< Connection: keep-alive"), "{err}");
    assert!(err.contains("Re-using existing connection"), "{err}");
    let (out, _) = curl(
        &[
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
            &server.url("/missing"),
        ],
        None,
    );
    assert_eq!(out, "404");
}

#[test]
fn h11_strict_client() {
    let server = Server::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/h11_client.py");
    let python = std::env::var("RINGMASTER_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = common::run_bounded_input(
        Command::new(python)
            .arg(script)
            .arg(server.addr.to_string()),
        None,
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "h11 client failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(stdout.trim(), "ok");
}
