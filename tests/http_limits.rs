//! Every HTTP limit and every RFC 9112 section 6.3 smuggling case, against the real
//! binary: the offending request gets its status and the connection closes, and the
//! responses to the requests before it on the same connection arrive whole, in order.

mod http_support;

use std::io::Write;
use std::time::{Duration, Instant};

use http_support::{closed_silently, exchange, read_responses, Server};

const FIRST: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n";
const AFTER: &[u8] = b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n";

fn small_limits() -> Server {
    Server::start(&[
        "--max-request-line",
        "256",
        "--max-header-bytes",
        "1024",
        "--max-headers",
        "16",
        "--max-body",
        "1000",
        "--header-timeout",
        "0.5",
        "--keepalive-timeout",
        "1",
        "--max-pipelined",
        "4",
    ])
}

/// A valid request, `bad`, then another valid one, in one write: expect 200, `status`,
/// then the close (the third request is never answered).
fn check(server: &Server, what: &str, bad: &[u8], status: u16) {
    let mut input = FIRST.to_vec();
    input.extend_from_slice(bad);
    input.extend_from_slice(AFTER);
    let (resps, closed) = exchange(server, &input, 2);
    assert_eq!(resps.len(), 2, "{what}: {resps:?}");
    assert_eq!(resps[0].status, 200, "{what}");
    assert_eq!(resps[0].body, b"Hello, World!", "{what}");
    assert_eq!(resps[1].status, status, "{what}");
    assert_eq!(resps[1].header("connection"), Some("close"), "{what}");
    assert!(closed, "{what}: connection left open");
}

#[test]
fn each_limit_once() {
    let server = small_limits();
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(300));
    check(&server, "request line", long_target.as_bytes(), 414);
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "v".repeat(1100)
    );
    check(&server, "header bytes", big_header.as_bytes(), 431);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..20 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    check(&server, "header count", many.as_bytes(), 431);
    check(
        &server,
        "body (Content-Length)",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n",
        413,
    );
    check(
        &server,
        "body (chunked)",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n",
        413,
    );
    check(
        &server,
        "HTTP/2.0",
        b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
        505,
    );
    check(
        &server,
        "HTTP/3.7",
        b"GET / HTTP/3.7\r\nHost: t\r\n\r\n",
        505,
    );
    check(
        &server,
        "unknown coding",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: foo, chunked\r\n\r\n",
        501,
    );
    assert!(server.counter("http", "uri_too_long") >= 1);
    assert!(server.counter("http", "header_too_large") >= 2);
    assert!(server.counter("http", "body_too_large") >= 2);
    assert!(server.counter("http", "version_unsupported") >= 2);
    assert!(server.counter("http", "not_implemented") >= 1);
}

#[test]
fn header_read_timeout_sends_408() {
    let server = small_limits();
    let mut s = server.connect();
    s.write_all(FIRST).unwrap();
    s.write_all(b"GET /plaintext HTTP/1.1\r\nHo").unwrap();
    let start = Instant::now();
    let (resps, _) = read_responses(&mut s, 2, Duration::from_secs(10));
    assert_eq!(resps.len(), 2, "{resps:?}");
    assert_eq!(resps[0].body, b"Hello, World!");
    assert_eq!(resps[1].status, 408);
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(closed_silently(&mut s, Duration::from_secs(3)));
    assert!(server.counter("http", "header_timeout") >= 1);
}

#[test]
fn idle_keep_alive_closes_silently() {
    let server = small_limits();
    let mut s = server.connect();
    s.write_all(FIRST).unwrap();
    let (resps, _) = read_responses(&mut s, 1, Duration::from_secs(10));
    assert_eq!(resps[0].status, 200);
    let start = Instant::now();
    assert!(
        closed_silently(&mut s, Duration::from_secs(5)),
        "still open"
    );
    assert!(start.elapsed() >= Duration::from_millis(800));
    assert!(server.counter("http", "idle_closed") >= 1);
}

#[test]
fn pipelining_bound_pauses_then_answers_all_in_order() {
    let server = small_limits();
    let mut s = server.connect();
    let mut input = Vec::new();
    for i in 0..12 {
        // Every third answered later from a timer, so responses queue up behind it.
        if i % 3 == 0 {
            input.extend_from_slice(
                format!("GET /delay/{} HTTP/1.1\r\nHost: t\r\n\r\n", 30 - i).as_bytes(),
            );
        } else {
            input.extend_from_slice(
                format!("GET /bytes/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
            );
        }
    }
    s.write_all(&input).unwrap();
    let (resps, _) = read_responses(&mut s, 12, Duration::from_secs(10));
    assert_eq!(resps.len(), 12);
    for (i, r) in resps.iter().enumerate() {
        assert_eq!(r.status, 200);
        if i % 3 == 0 {
            assert_eq!(r.body, b"OK");
        } else {
            assert_eq!(r.body.len(), i);
        }
    }
    assert!(server.counter("http", "pipeline_paused") >= 1);
}

#[test]
fn graceful_shutdown_finishes_requests_in_progress() {
    let mut server = Server::start(&[]);
    let mut idle = server.connect();
    idle.write_all(FIRST).unwrap();
    let (resps, _) = read_responses(&mut idle, 1, Duration::from_secs(10));
    assert_eq!(resps[0].status, 200);
    let mut busy = server.connect();
    busy.write_all(b"GET /delay/400 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let status = server.terminate(Duration::from_secs(10)).is_some();
    // The idle keep-alive connection is closed at once, without a response.
    assert!(closed_silently(&mut idle, Duration::from_secs(3)));
    // The one in progress gets its answer, then the close.
    let (resps, _) = read_responses(&mut busy, 1, Duration::from_secs(10));
    assert_eq!(resps.len(), 1);
    assert_eq!(resps[0].body, b"OK");
    assert!(closed_silently(&mut busy, Duration::from_secs(3)));
    assert!(status, "server did not exit after SIGTERM");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "exited before the delay"
    );
}

#[test]
fn smuggling_cases_get_400_and_close() {
    let server = Server::start(&[]);
    let cases: &[(&str, &[u8])] = &[
        (
            "TE and CL",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        ),
        (
            "CL and TE",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "differing CLs",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        ),
        (
            "CL list with different values",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4, 5\r\n\r\nabcde",
        ),
        (
            "non-digit CL",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nabcd",
        ),
        (
            "TE not ending in chunked",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE split over fields, chunked not last",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n",
        ),
        (
            "bad chunk size",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4x\r\nabcd\r\n0\r\n\r\n",
        ),
        (
            "overflowing chunk size",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n",
        ),
        (
            "space before colon",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "obs-fold",
            b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
        ),
        ("missing Host", b"GET /plaintext HTTP/1.1\r\n\r\n"),
        (
            "repeated Host",
            b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ),
    ];
    for (what, bad) in cases {
        check(&server, what, bad, 400);
    }
    assert!(server.counter("http", "smuggling") >= 9);
}

#[test]
fn request_targets_of_every_form() {
    let server = Server::start(&[]);
    let req = b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n\
GET http://a/plaintext HTTP/1.1\r\nHost: a\r\n\r\n\
OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n\
DELETE /plaintext HTTP/1.1\r\nHost: a\r\n\r\n\
GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n";
    let (resps, _) = exchange(&server, req, 5);
    let statuses: Vec<u16> = resps.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 405, 404]);
    assert_eq!(resps[0].body, b"Hello, World!");
    assert_eq!(resps[1].body, b"Hello, World!", "absolute-form");
    assert!(resps[2].header("Allow").is_some_and(|a| a.contains("GET")));
    assert_eq!(resps[3].header("Allow"), Some("GET, HEAD"));
}
