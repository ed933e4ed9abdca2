//! What a proxy sends upstream, whatever the client sent: arbitrary bytes, split at
//! arbitrary points, through the HTTP/1.1 server state machine; every request it
//! accepts is re-framed the way `ringmaster proxy` does it (`upstream::forward` fields,
//! `UpstreamRequest::encode`), and the result must be exactly one well-framed request:
//! one complete head with CRLF line ends only, no hop-by-hop or framing field but the
//! `Content-Length` the body needs, and the body, with nothing after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_protocols::http1::head::{header_buf, parse_head, BodyKind};
use ringmaster_protocols::http1::sim::SimConn;
use ringmaster_protocols::http1::upstream::forward;
use ringmaster_protocols::http1::{App, Exchange, Limits, Request, Response, UpstreamRequest};

struct Reframe;


impl App for Reframe {
    type Task = ();
    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<()> {
        let mut scratch = String::new();
        let ip = Some("127.0.0.1".parse().unwrap());
        let Ok(fields) = forward::request_fields(|| req.headers(), ip, "http", &mut scratch)
        else {
            ex.respond(Response::new(400));
            return None;
        };
        let call = UpstreamRequest::new(req.method(), req.target())
            .headers(&fields)
            .body(req.body());
        let mut out = Vec::new();
        if call.encode("upstream", &mut out).is_err() {
            assert!(out.is_empty(), "a refused request wrote nothing");
            ex.respond(Response::new(502));
            return None;
        }
        let limits = Limits {
            max_request_line: 1 << 16,
            max_header_bytes: 1 << 20,
            max_headers: 256,
            ..Limits::default()
        };
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
