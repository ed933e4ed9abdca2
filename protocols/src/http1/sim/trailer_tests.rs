//! Tests of trailer sections through the simulator: response trailers written by an
//! application ([`Exchange::finish_with_trailers`]), request trailers given to one
//! ([`App::on_trailers`]).

use super::*;
use crate::http1::client::FieldsView;
use crate::http1::{Exchange, Request};

/// Answers with trailers in every way the API allows, and records request trailers.
#[derive(Default)]
struct Trailers {
    /// What the streamed request bodies gave, in order: `data:..`, `trailer:n=v`, `end`.
    seen: Vec<String>,
}

const FIELDS: &[(&str, &str)] = &[
    ("X-Checksum", "abc"),
    ("Content-Length", "99"), // framing: never in trailers
    ("Set-Cookie", "a=b"),    // not allowed in trailers either
];

impl App for Trailers {
    type Task = ();
    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<()> {
        if req.is_body_streamed() {
            return Some(());
        }
        let accepts = if ex.accepts_trailers() { "yes" } else { "no" };
        match req.path() {
            "/sized" => {
                ex.start_sized(200, &[("X-Accepts", accepts)], 3);
                ex.send_chunk(b"abc");
            }
            _ => {
                ex.start_stream(200, &[("X-Accepts", accepts)]);
                ex.send_chunk(b"abc");
            }
        }
        ex.finish_with_trailers(FIELDS);
        None
    }
    fn stream_body(&mut self, req: &Request<'_>) -> bool {
        req.path() == "/upload"
    }
    fn on_trailers(&mut self, _: &mut (), trailers: FieldsView<'_>, _: &mut Exchange<'_>) {
        for (n, v) in trailers.iter() {
            self.seen
                .push(format!("trailer:{n}={}", String::from_utf8_lossy(v)));
        }
    }
    fn on_body(&mut self, _: &mut (), piece: &[u8], last: bool, ex: &mut Exchange<'_>) {
        if !piece.is_empty() {
            self.seen
                .push(format!("data:{}", String::from_utf8_lossy(piece)));
        }
        if last {
            self.seen.push("end".into());
            ex.respond(crate::http1::Response::text(200, "ok"));
        }
    }
}

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap()
}

#[test]
fn chunked_response_ends_with_the_allowed_trailers() {
    let mut app = Trailers::default();
    let mut c = SimConn::new(Limits::default());
    c.send(
        &mut app,
        b"GET /t HTTP/1.1\r\nHost: x\r\nTE: gzip, trailers\r\nConnection: TE\r\n\r\n",
    );
    let out = text(c.take_output());
    assert!(out.contains("X-Accepts: yes\r\n"), "{out:?}");
    assert!(
        out.ends_with("\r\n\r\n3\r\nabc\r\n0\r\nX-Checksum: abc\r\n\r\n"),
        "{out:?}"
    );
    // The two refused fields are the application's errors, and only they.
    assert_eq!(c.counters().app_errors, 2);
    assert!(!c.is_closed());
}

#[test]
fn an_origin_sends_trailers_without_te_but_says_the_client_did_not_ask() {
    let mut app = Trailers::default();
    let mut c = SimConn::new(Limits::default());
    c.send(&mut app, b"GET /t HTTP/1.1\r\nHost: x\r\nTE: gzip\r\n\r\n");
    let out = text(c.take_output());
    assert!(out.contains("X-Accepts: no\r\n"), "{out:?}");
    assert!(out.ends_with("0\r\nX-Checksum: abc\r\n\r\n"), "{out:?}");
}

#[test]
fn sized_response_drops_trailers_and_stays_open() {
    let mut app = Trailers::default();
    let mut c = SimConn::new(Limits::default());
    c.send(
        &mut app,
        b"GET /sized HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\nGET /sized HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let out = text(c.take_output());
    assert_eq!(out.matches("Content-Length: 3\r\n").count(), 2, "{out:?}");
    assert!(!out.contains("X-Checksum"), "{out:?}");
    assert!(out.ends_with("\r\n\r\nabc"), "{out:?}");
    assert_eq!(c.counters().app_errors, 0);
    assert!(!c.is_closed());
}

#[test]
fn http10_and_head_get_no_trailers() {
    let mut app = Trailers::default();
    let mut c = SimConn::new(Limits::default());
    c.send(&mut app, b"GET /t HTTP/1.0\r\nTE: trailers\r\n\r\n");
    let out = text(c.take_output());
    assert!(out.contains("X-Accepts: no\r\n"), "{out:?}");
    assert!(out.ends_with("\r\n\r\nabc"), "{out:?}");
    assert!(c.is_closed());

    let mut c = SimConn::new(Limits::default());
    c.send(
        &mut app,
        b"HEAD /t HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n",
    );
    let out = text(c.take_output());
    assert!(
        out.ends_with("Transfer-Encoding: chunked\r\nX-Accepts: yes\r\n\r\n"),
        "{out:?}"
    );
}

#[test]
fn request_trailers_reach_a_streaming_app_between_data_and_end() {
    let req: &[u8] = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        3\r\nabc\r\n0\r\nX-Sum:  1 \r\nHost: evil\r\n\r\n";
    let want = ["data:abc", "trailer:X-Sum=1", "trailer:Host=evil", "end"];
    // All at once (the body is complete with its head, yet streamed for its trailers).
    let mut app = Trailers::default();
    let mut c = SimConn::new(Limits::default());
    c.send(&mut app, req);
    assert_eq!(app.seen, want);
    assert!(text(c.take_output()).ends_with("\r\n\r\nok"));
    // A byte at a time: the same events (the data then in pieces).
    let mut app = Trailers::default();
    let mut c = SimConn::new(Limits::default());
    for b in req {
        c.send(&mut app, std::slice::from_ref(b));
    }
    let data: String = app
        .seen
        .iter()
        .filter_map(|s| s.strip_prefix("data:"))
        .collect();
    assert_eq!(data, "abc");
    let rest: Vec<&str> = app
        .seen
        .iter()
        .filter(|s| !s.starts_with("data:"))
        .map(String::as_str)
        .collect();
    assert_eq!(rest, &want[1..]);
    assert!(text(c.take_output()).ends_with("\r\n\r\nok"));
}

#[test]
fn a_body_without_trailers_ends_as_before() {
    let mut app = Trailers::default();
    let mut c = SimConn::new(Limits::default());
    c.send(
        &mut app,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    );
    c.send(&mut app, b"0\r\n\r\n");
    assert_eq!(app.seen, ["data:abc", "end"]);
}
