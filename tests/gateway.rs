//! The gateway example (`protocols/examples/gateway.rs`, the one docs/EMBEDDING.md
//! shows) end to end: the real binary between a real client on 127.0.0.1 and real
//! backends: Python's `http.server` and the misbehaving backends of
//! `tests/py/bad_backend.py` (reset, stall, malformed head, closed mid-body, closing
//! idle pooled connections, dropping a reused connection's request). Checked: every
//! body byte, pipelined order, pool reuse as the backend counts it, 502/504 and
//! truncation, the retry rules, and that the gateway's descriptor count returns to
//! where it started once the backend is gone. Every loop is bounded in count and time.

mod common;
mod http_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{http_server, ServerProc};
use http_support::{read_responses, Resp};

const LIMIT: Duration = Duration::from_secs(15);

fn gateway_bin() -> PathBuf {
    let bin = std::path::Path::new(common::bin());
    let path = bin.parent().unwrap().join("examples/gateway");
    assert!(
        path.exists(),
        "{} is missing: build the examples (cargo build --release --examples)",
        path.display()
    );
    path
}

fn gateway(backend: SocketAddr) -> ServerProc {
    let child = Command::new(gateway_bin())
        .args(["--listen", "127.0.0.1:0", "--shards", "1", "--backend"])
        .arg(backend.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the gateway example");
    ServerProc::adopt(child)
}

fn bad_backend(mode: &str, extra: &[&str]) -> ServerProc {
    common::bad_backend(mode, extra)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    s
}

fn send(s: &mut TcpStream, method: &str, path: &str, body: &[u8]) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: gw\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
}

/// One request on `s`, its response.
fn call(s: &mut TcpStream, method: &str, path: &str) -> Resp {
    send(s, method, path, b"");
    let (mut r, _) = read_responses(s, 1, LIMIT);
    assert_eq!(r.len(), 1, "{method} {path}: no response");
    r.remove(0)
}

/// The backend's `/__stats`: (connections accepted, the stats one included; requests
/// answered).
fn backend_stats(addr: SocketAddr) -> (u64, u64) {
    let mut s = connect(addr);
    let r = call(&mut s, "GET", "/__stats");
    let text = String::from_utf8(r.body).unwrap();
    let num = |key: &str| -> u64 {
        let at = text.find(key).unwrap() + key.len();
        let digits: String = text[at..]
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().unwrap()
    };
    (num("\"connections\""), num("\"requests\""))
}

/// Stops the backend, then checks the gateway's descriptors return to `start` (its
/// pooled connections see the close and leave the pool).
fn fds_return(gw: &ServerProc, mut backend: Option<ServerProc>, start: usize) {
    if let Some(b) = backend.as_mut() {
        b.stop();
    }
    let now = gw.wait_fds_at_most(start, LIMIT);
    assert_eq!(now, start, "gateway descriptors after the case");
}

#[test]
fn relays_pipelines_and_reuses_one_pooled_connection() {
    let be = bad_backend("ok", &[]);
    let gw = gateway(be.addr);
    let start = gw.fd_count();
    {
        let mut c = connect(gw.addr);
        for i in 0..20 {
            let r = call(&mut c, "GET", &format!("/item{i}"));
            assert_eq!(r.status, 200);
            assert_eq!(r.body, format!("HELLO FROM /ITEM{i}\n").as_bytes());
            assert_eq!(r.header("content-type"), Some("text/plain"));
            assert_eq!(r.header("content-length"), Some(&*r.body.len().to_string()));
        }
        let mut burst = Vec::new();
        for i in 0..5 {
            burst.extend_from_slice(format!("GET /p{i} HTTP/1.1\r\nHost: gw\r\n\r\n").as_bytes());
        }
        c.write_all(&burst).unwrap();
        let (rs, _) = read_responses(&mut c, 5, LIMIT);
        let bodies: Vec<_> = rs.iter().map(|r| r.body.clone()).collect();
        let want: Vec<_> = (0..5)
            .map(|i| format!("HELLO FROM /P{i}\n").into_bytes())
            .collect();
        assert_eq!(bodies, want, "pipelined responses in request order");
    }
    let (conns, reqs) = backend_stats(be.addr);
    assert_eq!(reqs, 25);
    // At most one connection per concurrent request: 1 for the sequential ones, up to 5
    // for the pipelined burst (the gateway may answer them concurrently); plus /__stats.
    assert!(
        conns <= 6,
        "backend saw {conns} connections for 25 requests"
    );
    fds_return(&gw, Some(be), start);
}

#[test]
fn refused_backend_is_502() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = gateway(port); // nothing listens there any more
    let start = gw.fd_count();
    let mut c = connect(gw.addr);
    for _ in 0..3 {
        assert_eq!(call(&mut c, "GET", "/x").status, 502);
    }
    drop(c);
    fds_return(&gw, None, start);
}

#[test]
fn stalled_backend_is_504() {
    let be = bad_backend("stall", &[]);
    let gw = gateway(be.addr);
    let start = gw.fd_count();
    let mut c = connect(gw.addr);
    let t = Instant::now();
    assert_eq!(call(&mut c, "GET", "/x").status, 504);
    assert!(t.elapsed() < LIMIT);
    // The connection is still good for the next request.
    assert_eq!(call(&mut c, "GET", "/y").status, 504);
    drop(c);
    fds_return(&gw, Some(be), start);
}

#[test]
fn reset_and_malformed_backends_are_502() {
    for mode in ["reset", "malformed"] {
        let be = bad_backend(mode, &[]);
        let gw = gateway(be.addr);
        let start = gw.fd_count();
        let mut c = connect(gw.addr);
        for _ in 0..3 {
            assert_eq!(call(&mut c, "GET", "/x").status, 502, "{mode}");
        }
        drop(c);
        fds_return(&gw, Some(be), start);
    }
}

#[test]
fn body_cut_short_by_the_backend_is_never_passed_off_as_complete() {
    let be = bad_backend("mid-body-close", &[]);
    let gw = gateway(be.addr);
    let start = gw.fd_count();
    let mut c = connect(gw.addr);
    send(&mut c, "GET", "/x", b"");
    let mut got = Vec::new();
    let deadline = Instant::now() + LIMIT;
    let mut buf = [0u8; 4096];
    let mut closed = false;
    while Instant::now() < deadline {
        match c.read(&mut buf) {
            Ok(0) | Err(_) if !got.is_empty() => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    assert!(closed, "the gateway closes the client connection");
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 1000"),
        "{head}"
    );
    assert!(body.len() < 1000 && body.bytes().all(|b| b == b'X'));
    drop(c);
    fds_return(&gw, Some(be), start);
}

#[test]
fn chunked_and_close_delimited_bodies_relay_whole() {
    for mode in ["chunked", "close-delimited", "one-shot"] {
        let be = bad_backend(mode, &[]);
        let gw = gateway(be.addr);
        let start = gw.fd_count();
        let mut c = connect(gw.addr);
        for i in 0..3 {
            let r = call(&mut c, "GET", &format!("/{mode}{i}"));
            assert_eq!(r.status, 200, "{mode}");
            let want = format!("HELLO FROM /{}{i}\n", mode.to_ascii_uppercase());
            assert_eq!(r.body, want.as_bytes(), "{mode}");
        }
        drop(c);
        fds_return(&gw, Some(be), start);
    }
}

#[test]
fn a_pooled_connection_the_backend_closed_while_idle_is_never_handed_out() {
    let be = bad_backend("close-idle", &["--idle-close-ms", "100"]);
    let gw = gateway(be.addr);
    let start = gw.fd_count();
    let mut c = connect(gw.addr);
    for i in 0..3 {
        let r = call(&mut c, "GET", &format!("/a{i}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, format!("HELLO FROM /A{i}\n").as_bytes());
        // Far longer than the backend keeps an idle connection (100 ms).
        std::thread::sleep(Duration::from_millis(800));
    }
    let (conns, reqs) = backend_stats(be.addr);
    assert_eq!(
        (conns, reqs),
        (4, 3),
        "one fresh connection per request, no failure"
    );
    drop(c);
    fds_return(&gw, Some(be), start);
}

#[test]
fn a_reused_connection_dropped_unanswered_is_retried_for_idempotent_requests_only() {
    let be = bad_backend("drop-second", &[]);
    let gw = gateway(be.addr);
    let start = gw.fd_count();
    let mut c = connect(gw.addr);
    // Fresh connection A answers.
    assert_eq!(call(&mut c, "GET", "/a").body, b"HELLO FROM /A\n");
    // A is reused and dropped unanswered: GET is sent again, on fresh connection B.
    assert_eq!(call(&mut c, "GET", "/b").body, b"HELLO FROM /B\n");
    // B is reused and dropped unanswered: a POST is never sent twice.
    send(&mut c, "POST", "/c", b"body");
    let (r, _) = read_responses(&mut c, 1, LIMIT);
    assert_eq!(r[0].status, 502);
    let (_, reqs) = backend_stats(be.addr);
    assert_eq!(reqs, 2, "the POST never reached a handler twice (nor once)");
    drop(c);
    fds_return(&gw, Some(be), start);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_large_body_from_python_http_server_streams_through_in_bounded_memory() {
    const SIZE: usize = 64 << 20;
    let dir = std::env::temp_dir().join(format!("rm-gw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let content: Vec<u8> = (0..SIZE).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(dir.join("big"), &content).unwrap();
    std::fs::write(dir.join("small"), b"small file\n").unwrap();
    let (mut py, addr) = http_server(&dir);
    let gw = gateway(addr);
    let start = gw.fd_count();
    let mut c = connect(gw.addr);
    assert_eq!(call(&mut c, "GET", "/small").body, b"SMALL FILE\n");
    let before = rss_kib(gw.pid());

    send(&mut c, "GET", "/big", b"");
    // The client does not read for a while: the gateway must stop reading the backend
    // rather than buffer the body.
    std::thread::sleep(Duration::from_millis(1500));
    let peak_while_stalled = rss_kib(gw.pid());
    let mut got = Vec::with_capacity(SIZE + 4096);
    let mut buf = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut head_len = None;
    while Instant::now() < deadline {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if head_len.is_none() {
            head_len = got.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        }
        if head_len.is_some_and(|h| got.len() >= h + SIZE) {
            break;
        }
    }
    let h = head_len.expect("a response head");
    let head = String::from_utf8_lossy(&got[..h]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {SIZE}")), "{head}");
    assert_eq!(got.len() - h, SIZE, "every body byte");
    assert!(
        got[h..]
            .iter()
            .zip(&content)
            .all(|(g, c)| *g == c.to_ascii_uppercase()),
        "the body, upper-cased"
    );
    let grew = peak_while_stalled.saturating_sub(before);
    eprintln!("gateway RSS grew {grew} KiB while the client did not read");
    assert!(
        grew < 32 * 1024,
        "the gateway held {grew} KiB of a {} KiB body the client was not reading",
        SIZE / 1024
    );
    drop(c);
    let _ = py.kill();
    let _ = py.wait();
    fds_return(&gw, None, start);
    let _ = std::fs::remove_dir_all(&dir);
}
