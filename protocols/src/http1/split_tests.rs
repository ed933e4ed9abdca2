//! Property tests: the connection state machine gives the same requests and the same
//! output whatever byte boundaries the input arrives at, and never panics on garbage.

use proptest::prelude::*;

use super::conn::tests::{Seen, TestApp, TestPort};
use super::conn::Conn;
use super::limits::Limits;

/// One generated request and its wire form.
#[derive(Debug, Clone)]
struct Gen {
    wire: Vec<u8>,
}

fn request() -> impl Strategy<Value = Gen> {
    let method = prop_oneof![Just("GET"), Just("POST"), Just("HEAD"), Just("DELETE")];
    let path = "/[a-z0-9]{0,8}(\\?[a-z=&]{0,8})?";
    let headers = prop::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,20}"), 0..4);
    let body = prop::collection::vec(any::<u8>(), 0..300);
    let chunked = any::<bool>();
    let cuts = prop::collection::vec(1usize..64, 0..6);
    let ext = any::<bool>();
    let trailer = any::<bool>();
    (method, path, headers, body, chunked, cuts, ext, trailer).prop_map(
        |(method, path, headers, body, chunked, cuts, ext, trailer)| {
            let mut wire = format!("{method} {path} HTTP/1.1\r\nHost: example\r\n").into_bytes();
            for (n, v) in headers {
                // Keep generated names clear of the fields that change framing.
                let v = v.trim();
                wire.extend_from_slice(format!("X-{n}: {v}\r\n").as_bytes());
            }
            if method == "POST" && chunked {
                wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                let mut rest = &body[..];
                let mut cuts = cuts.into_iter();
                while !rest.is_empty() {
                    let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
                    let (c, r) = rest.split_at(n);
                    wire.extend_from_slice(format!("{n:x}").as_bytes());
                    if ext {
                        wire.extend_from_slice(b";name=\"v\"");
                    }
                    wire.extend_from_slice(b"\r\n");
                    wire.extend_from_slice(c);
                    wire.extend_from_slice(b"\r\n");
                    rest = r;
                }
                wire.extend_from_slice(b"0\r\n");
                if trailer {
                    wire.extend_from_slice(b"X-Trailer: t\r\n");
                }
                wire.extend_from_slice(b"\r\n");
            } else if method == "POST" {
                wire.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                wire.extend_from_slice(&body);
            } else {
                wire.extend_from_slice(b"\r\n");
            }
            Gen { wire }
        },
    )
}

/// Feeds `pieces` the way the runtime does: unconsumed bytes are kept and shown again
/// with the next piece appended. Returns what the app saw and the bytes written.
fn run(pieces: &[&[u8]], limits: &Limits) -> (Vec<Seen>, Vec<u8>, bool) {
    let mut port = TestPort::new();
    let mut conn = Conn::new(port.now);
    let mut app = TestApp::default();
    let mut carry: Vec<u8> = Vec::new();
    for piece in pieces {
        carry.extend_from_slice(piece);
        let used = conn.feed(&mut app, &carry, limits, &mut port);
        assert!(used <= carry.len());
        carry.drain(..used);
        if port.closed {
            break;
        }
    }
    (app.seen, port.out, port.closed)
}

fn split_at_points<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts {
        out.push(&bytes[last..c]);
        last = c;
    }
    out.push(&bytes[last..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_split_parses_the_same(
        reqs in prop::collection::vec(request(), 1..8),
        points in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        let wire: Vec<u8> = reqs.iter().flat_map(|r| r.wire.iter().copied()).collect();
        let limits = Limits::default();
        let whole = run(&[&wire], &limits);
        prop_assert_eq!(whole.0.len(), reqs.len());
        prop_assert!(!whole.2);
        let split = run(&split_at_points(&wire, &points), &limits);
        prop_assert_eq!(&whole.0, &split.0);
        prop_assert_eq!(&whole.1, &split.1);
    }

    #[test]
    fn byte_at_a_time_parses_the_same(reqs in prop::collection::vec(request(), 1..4)) {
        let wire: Vec<u8> = reqs.iter().flat_map(|r| r.wire.iter().copied()).collect();
        let limits = Limits::default();
        let whole = run(&[&wire], &limits);
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        let split = run(&bytes, &limits);
        prop_assert_eq!(&whole.0, &split.0);
        prop_assert_eq!(&whole.1, &split.1);
    }

    #[test]
    fn garbage_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        points in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let limits = Limits { max_request_line: 64, max_header_bytes: 128, ..Limits::default() };
        let _ = run(&split_at_points(&bytes, &points), &limits);
    }

    #[test]
    fn mutated_requests_never_panic(
        reqs in prop::collection::vec(request(), 1..4),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        points in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire: Vec<u8> = reqs.iter().flat_map(|r| r.wire.iter().copied()).collect();
        let n = wire.len();
        for (i, b) in flips {
            wire[i % n] = b;
        }
        let _ = run(&split_at_points(&wire, &points), &Limits::default());
    }
}
