//! What a proxy sends upstream, whatever the client sent: arbitrary bytes, split at
//! arbitrary points, through the HTTP/1.1 server state machine; every request it
//! accepts is re-framed the way `ringmaster proxy` does it (`upstream::forward` fields,
//! `UpstreamRequest::encode`), and the result must be exactly one well-framed request:
//! one complete head with CRLF line ends only, no hop-by-hop or framing field but the
//! `Content-Length` the body needs, and the body, with nothing after it. A chunked
//! body that streams (as the proxy takes every body that does not arrive whole, and
//! any with trailers) goes up chunked, its trailer section re-encoded from what
//! `App::on_trailers` gave: the upstream must decode the same body and exactly the
//! client's trailer fields that are allowed in trailers, and nothing after them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_protocols::http1::body::ChunkedDecoder;
use ringmaster_protocols::http1::client::FieldsView;
use ringmaster_protocols::http1::encode::{
    trailer_allowed, write_chunk_start, write_last_chunk, CHUNK_END,
};
use ringmaster_protocols::http1::head::{header_buf, parse_head, BodyKind};
use ringmaster_protocols::http1::sim::SimConn;
use ringmaster_protocols::http1::upstream::forward;
use ringmaster_protocols::http1::{App, Exchange, Limits, Request, Response, UpstreamRequest};

struct Reframe;

/// A streamed body on its way up: the encoded request so far, the decoded body the
/// client sent, and its trailer fields as given.
#[derive(Default)]
struct Upload {
    out: Vec<u8>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
    /// A `Content-Length` body: its re-framing is the whole-body case's, not checked here.
    sized: bool,
}

/// The upstream side's limits: roomy, so that only a re-framing fault fails to parse.
fn upstream_limits() -> Limits {
    Limits {
        max_request_line: 1 << 16,
        max_header_bytes: 1 << 20,
        max_headers: 256,
        ..Limits::default()
    }
}


impl App for Reframe {
    type Task = Upload;
    fn stream_body(&mut self, _req: &Request<'_>) -> bool {
        true
    }
    fn on_trailers(&mut self, up: &mut Upload, trailers: FieldsView<'_>, _: &mut Exchange<'_>) {
        for (n, v) in trailers.iter() {
            // As the proxy takes them: text values only (the encoder checks the rest).
            if let Ok(v) = std::str::from_utf8(v) {
                up.trailers.push((n.to_owned(), v.to_owned()));
            }
        }
    }
    fn on_body(&mut self, up: &mut Upload, piece: &[u8], last: bool, ex: &mut Exchange<'_>) {
        if up.sized {
            if last {
                ex.respond(Response::new(200));
            }
            return;
        }
        if !piece.is_empty() {
            write_chunk_start(&mut up.out, piece.len());
            up.out.extend_from_slice(piece);
            up.out.extend_from_slice(CHUNK_END);
            up.body.extend_from_slice(piece);
        }
        if !last {
            return;
        }
        let given: Vec<(&str, &str)> =
            up.trailers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        write_last_chunk(&mut up.out, &given);
        let limits = upstream_limits();
        let mut hb = header_buf();
        let head = parse_head(&up.out, &mut hb, &limits)
            .expect("the upstream request parses")
            .expect("the upstream request's head is complete");
        assert_eq!(head.body(), BodyKind::Chunked, "a body of unknown length goes chunked");
        {
            let rest = &up.out[head.len()..];
            let mut dec = ChunkedDecoder::new(u64::MAX, 1 << 20);
            let mut got = Vec::new();
            let used = dec
                .decode(rest, &mut |d| got.extend_from_slice(d))
                .expect("the upstream body decodes");
            assert!(dec.is_done() && used == rest.len(), "one body, nothing after it");
            assert_eq!(got, up.body, "the body, whole");
            let want: Vec<(&str, &[u8])> = given
                .iter()
                .filter(|(n, v)| trailer_allowed(n, v))
                .map(|&(n, v)| (n, v.trim_matches([' ', '\t']).as_bytes()))
                .collect();
            let seen: Vec<(&str, &[u8])> = dec.trailers().iter().collect();
            assert_eq!(seen, want, "the allowed trailers, and only they");
        }
        ex.respond(Response::new(200));
    }
    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Upload> {
        let mut scratch = Vec::new();
        let ip = Some("127.0.0.1".parse().unwrap());
        let fields = forward::request_fields(req.headers(), ip, "http", &mut scratch);
        if req.is_body_streamed() {
            // Re-framed as the proxy does: its length if it had one, chunked otherwise.
            let len = req
                .header("content-length")
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
            let call = UpstreamRequest::new(req.method(), req.target())
                .header_bytes(&fields)
                .body_stream(len);
            let mut up = Upload::default();
            if call.encode("upstream", &mut up.out).is_err() {
                ex.respond(Response::new(502));
                return None;
            }
            up.sized = len.is_some();
            return Some(up);
        }
        let call = UpstreamRequest::new(req.method(), req.target())
            .header_bytes(&fields)
            .body(req.body());
        let mut out = Vec::new();
        if call.encode("upstream", &mut out).is_err() {
            assert!(out.is_empty(), "a refused request wrote nothing");
            ex.respond(Response::new(502));
            return None;
        }
        let limits = upstream_limits();
        let mut hb = header_buf();
        let head = parse_head(&out, &mut hb, &limits)
            .expect("the upstream request parses")
            .expect("the upstream request's head is complete");
        let head_bytes = &out[..head.len()];
        for (i, &b) in head_bytes.iter().enumerate() {
            if b == b'\n' {
                assert!(i > 0 && head_bytes[i - 1] == b'\r', "a bare LF upstream");
            }
        }
        let mut lengths = 0;
        for h in head.headers() {
            let name = h.name.to_ascii_lowercase();
            lengths += usize::from(name == "content-length");
            let hop = forward::HOP_BY_HOP.contains(&name.as_str()) && name != "content-length";
            assert!(!hop, "hop-by-hop field {name} upstream");
        }
        assert!(lengths <= 1, "one Content-Length at most");
        // Every end-to-end field arrives as the client sent it, byte for byte (obs-text
        // included), in order; the ones the proxy writes itself aside.
        let ours = |n: &str| {
            ["host", "via", "expect", "x-forwarded-for", "x-forwarded-proto"]
                .iter()
                .any(|o| n.eq_ignore_ascii_case(o))
        };
        let sent: Vec<(&str, &[u8])> = forward::end_to_end(req.headers())
            .into_iter()
            .filter(|&(n, _)| !ours(n))
            .collect();
        let seen: Vec<(&str, &[u8])> = head
            .headers()
            .iter()
            .map(|h| (h.name, h.value))
            .filter(|&(n, _)| !ours(n) && !n.eq_ignore_ascii_case("content-length"))
            .collect();
        assert_eq!(seen, sent, "the end-to-end fields, byte for byte");
        let body_len = match head.body() {
            BodyKind::Empty => 0,
            BodyKind::Length(n) => n as usize,
            BodyKind::Chunked => panic!("the upstream request is chunked"),
        };
        assert_eq!(body_len, req.body().len(), "the body's length");
        assert_eq!(head.len() + body_len, out.len(), "one request, nothing after it");
        assert_eq!(&out[head.len()..], req.body(), "the body, whole");
        ex.respond(Response::new(200));
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_body: 4096,
        ..Limits::default()
    };
    let mut app = Reframe;
    let mut conn = SimConn::new(limits);
    for piece in rest.split_inclusive(|&b| b == split) {
        conn.send(&mut app, piece);
        let _ = conn.take_output();
        if conn.is_closed() {
            break;
        }
    }
    conn.close(&mut app);
});
