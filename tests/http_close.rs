//! How `ringmaster http` closes: a client that says its request is its last
//! (`Connection: close`) gets its whole response and a close without lingering (one
//! system call, no wait for its FIN); errors and clients still sending keep the lingering
//! close, so no reset can destroy a response. Counted by the runtime's
//! `closed_without_linger`, read from `/stats`.

mod http_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use http_support::Server;

/// Reads until the server closes (bounded by the stream's 10 s read timeout).
fn read_to_close(s: &mut std::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let start = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        assert!(start.elapsed() < Duration::from_secs(20), "no close");
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read after {} bytes: {e}", out.len()),
        }
    }
}

/// One runtime counter from `/stats` of the (one-shard) server.
fn runtime_counter(server: &Server, name: &str) -> u64 {
    let mut s = server.connect();
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let text = String::from_utf8(read_to_close(&mut s)).unwrap();
    let runtime = text.split("\"runtime\":{").nth(1).expect("runtime section");
    runtime
        .split(&format!("\"{name}\":"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .split([',', '}'])
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The body length of the one response in `raw` (checked against Content-Length).
fn body_len(raw: &[u8]) -> usize {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let declared: usize = head
        .split("content-length:")
        .nth(1)
        .unwrap()
        .split("\r\n")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(raw.len() - head_end, declared, "body cut short");
    declared
}

#[test]
fn a_last_request_gets_its_whole_response_and_a_close_without_linger() {
    let server = Server::start(&[]);
    let before = runtime_counter(&server, "closed_without_linger");
    const N: u64 = 20;
    for i in 0..N {
        let mut s = server.connect();
        // Large responses: the close must wait for the whole body to be sent.
        let size = 2_000_000 + i as usize * 1000;
        write!(
            s,
            "GET /bytes/{size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        assert_eq!(body_len(&read_to_close(&mut s)), size);
    }
    // HTTP/1.0 without keep-alive says the same.
    let mut s = server.connect();
    s.write_all(b"GET /plaintext HTTP/1.0\r\n\r\n").unwrap();
    assert!(read_to_close(&mut s).ends_with(b"Hello, World!"));
    // The /stats requests themselves closed without lingering too (the first one is
    // counted after it was answered, so it is in `before`).
    let after = runtime_counter(&server, "closed_without_linger");
    assert!(
        after >= before + N + 2,
        "closed_without_linger {before} -> {after}"
    );
}

#[test]
fn errors_and_a_client_still_sending_keep_the_lingering_close() {
    let server = Server::start(&[]);
    let base = runtime_counter(&server, "closed_without_linger");
    // Bytes after the close-bound request: the earlier response still arrives whole.
    let mut s = server.connect();
    s.write_all(
        b"GET /bytes/1000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n\
          GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(body_len(&read_to_close(&mut s)), 1_000_000);
    // A malformed request after a good one: 200 then 400, both whole.
    let mut s = server.connect();
    s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\n")
        .unwrap();
    let out = String::from_utf8(read_to_close(&mut s)).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("HTTP/1.1 400"), "{out}");
    // Neither closed without lingering (only the /stats request in between did).
    let after = runtime_counter(&server, "closed_without_linger");
    assert_eq!(after, base + 1, "closed_without_linger {base} -> {after}");
}
